"""Address spaces: CPU page tables of mms and IOVA page tables of paging domains.

Pages are 4 KiB; addresses are byte addresses (ints); page numbers are ``addr >> 12``.  Physical
frames of user memory come from a lowest-free allocator, so a frame freed by one process is the
next one handed to another: a stale translation anywhere shows up as DMA into someone else's
memory.

Kernel sources modeled: mm/mmap.c (anonymous ``mmap``/``munmap``), mm/mprotect.c, mm/memory.c
``handle_mm_fault()`` (demand paging), mm/mmu_notifier.c
``mmu_notifier_arch_invalidate_secondary_tlbs()`` (IOMMU/ATC invalidation on unmap and
protection change), drivers/iommu/iommu.c ``iommu_map()``/``iommu_unmap()``.
"""

from __future__ import annotations

from .errors import EEXIST, EFAULT, EINVAL, ModelUsageError
from .hw.cache import flush_domain_range, flush_mm_range
from .state import (PAGE_SHIFT, PAGE_SIZE, PROT_EXEC, PROT_READ, PROT_WRITE, DomainType,
                     SystemState, Vma)

MAX_MAP_PAGES = 1 << 16


def frame_alloc(s: SystemState) -> tuple[SystemState, int]:
    """A free physical frame (lowest first)."""
    frames, pfn = s.frames.alloc_lowest(1, (1 << 40) - 1)
    return s._replace(frames=frames), pfn


def _task_mm(s: SystemState, tid: int) -> int:
    t = s.tasks.get(tid)
    if t is None:
        raise ModelUsageError(f"unknown or exited task {tid}")
    return t.mm


def mmap_anon(s: SystemState, tid: int, npages: int = 1,
              prot: int = PROT_READ | PROT_WRITE) -> tuple[SystemState, int]:
    """Anonymous ``mmap`` of ``npages`` 4 KiB pages (1..65536) with PROT_* bits ``prot``.
    Returns the start address (bytes); -EINVAL for a bad length or protection.  Pages are
    populated on first touch (``touch``) or by an I/O page fault."""
    if not 0 < npages <= MAX_MAP_PAGES or prot & ~(PROT_READ | PROT_WRITE | PROT_EXEC):
        return s, -EINVAL
    mm = _task_mm(s, tid)
    rec = s.mms[mm]
    vid = s.next_id
    vma = Vma(vid, 0, False, rec.next_vpage, npages, prot)
    rec = rec._replace(vmas=rec.vmas + (vma,), next_vpage=rec.next_vpage + npages + 1)
    return s._replace(next_id=vid + 1, mms=s.mms.set(mm, rec)), vma.start << PAGE_SHIFT


def find_vma(s: SystemState, mm: int, vpage: int) -> Vma | None:
    """The VMA of ``mm`` covering virtual page ``vpage``."""
    rec = s.mms.get(mm)
    if rec is None:
        return None
    for v in rec.vmas:
        if v.start <= vpage < v.start + v.npages:
            return v
    return None


def handle_mm_fault(s: SystemState, mm: int, vpage: int,
                    access: int) -> tuple[SystemState, int]:
    """Populate ``vpage`` of ``mm`` for ``access``.  Returns (state, pfn) or (state, -EFAULT)
    when no anonymous VMA covers it or its protection lacks a requested right."""
    v = find_vma(s, mm, vpage)
    if v is None or v.file or (access & ~v.prot):
        return s, -EFAULT
    rec = s.mms[mm]
    cur = rec.pt.get(vpage)
    if cur is not None:
        return s, cur[0]
    s, pfn = frame_alloc(s)
    rec = s.mms[mm]
    return s._replace(mms=s.mms.set(mm, rec._replace(pt=rec.pt.set(vpage, (pfn, v.prot))))), pfn


def touch(s: SystemState, tid: int, addr: int, access: int = PROT_READ) -> tuple[SystemState, int]:
    """CPU access by task ``tid`` at byte address ``addr``: demand-faults the page in.
    Returns the physical address or -EFAULT (the task would get SIGSEGV; not modeled)."""
    mm = _task_mm(s, tid)
    s, pfn = handle_mm_fault(s, mm, addr >> PAGE_SHIFT, access)
    if pfn < 0:
        return s, pfn
    return s, (pfn << PAGE_SHIFT) | (addr & (PAGE_SIZE - 1))


def unmap_range(s: SystemState, mm: int, start: int, npages: int,
                notify: bool = True) -> SystemState:
    """Remove the PTEs of ``[start, start+npages)``: the secondary TLBs (IOTLB, ATC) of every
    device bound to ``mm`` are invalidated first (``notify``; exit_mmap relies on the earlier
    release instead), then the frames are freed."""
    rec = s.mms[mm]
    gone = [vp for vp in range(start, start + npages) if vp in rec.pt] if npages <= 4096 else \
        [vp for vp in rec.pt.keys() if start <= vp < start + npages]
    if not gone:
        return s
    if notify:
        s = flush_mm_range(s, mm, start, npages)
    pt = rec.pt
    frames = s.frames
    for vp in gone:
        frames = frames.clear(pt[vp][0])
        pt = pt.delete(vp)
    return s._replace(frames=frames, mms=s.mms.set(mm, s.mms[mm]._replace(pt=pt)))


def mprotect(s: SystemState, tid: int, addr: int, prot: int) -> tuple[SystemState, int]:
    """Change the protection of the VMA starting at byte address ``addr``.  Populated PTEs
    take the new rights after the secondary TLBs are invalidated.  Returns 0 or -EINVAL."""
    if prot & ~(PROT_READ | PROT_WRITE | PROT_EXEC):
        return s, -EINVAL
    mm = _task_mm(s, tid)
    rec = s.mms[mm]
    match = [v for v in rec.vmas if v.start == addr >> PAGE_SHIFT and not v.file]
    if not match or addr & (PAGE_SIZE - 1):
        return s, -EINVAL
    v = match[0]
    s = flush_mm_range(s, mm, v.start, v.npages)
    rec = s.mms[mm]
    pt = rec.pt
    for vp in range(v.start, v.start + v.npages):
        if vp in pt:
            pt = pt.set(vp, (pt[vp][0], prot))
    vmas = tuple(x._replace(prot=prot) if x.id == v.id else x for x in rec.vmas)
    return s._replace(mms=s.mms.set(mm, rec._replace(vmas=vmas, pt=pt))), 0


# -- IOVA page tables ----------------------------------------------------------------------------

def _paging(s: SystemState, domain: int):
    d = s.domains.get(domain)
    if d is None:
        raise ModelUsageError(f"unknown or freed iommu_domain {domain}")
    return d


def iommu_map(s: SystemState, domain: int, iova: int, paddr: int, size: int,
              prot: int = PROT_READ | PROT_WRITE) -> tuple[SystemState, int]:
    """Map ``size`` bytes at ``iova`` to ``paddr`` in a paging domain.

    Args: iova, paddr, size in bytes, 4 KiB aligned, size > 0; prot: PROT_* bits.
    Returns 0; -EINVAL (not a paging domain, misaligned, empty, no access bits); -EEXIST (a
    page of the range is already mapped; nothing is mapped then).
    Models: drivers/iommu/iommu.c ``iommu_map()`` with io-pgtable's -EEXIST.
    """
    d = _paging(s, domain)
    if d.type not in (DomainType.UNMANAGED, DomainType.DMA):
        return s, -EINVAL
    if (iova | paddr | size) & (PAGE_SIZE - 1) or size <= 0 or not prot & (PROT_READ | PROT_WRITE):
        return s, -EINVAL
    n = size >> PAGE_SHIFT
    if n > MAX_MAP_PAGES:
        return s, -EINVAL
    first = iova >> PAGE_SHIFT
    table = d.iova
    for i in range(n):
        if first + i in table:
            return s, -EEXIST
        table = table.set(first + i, ((paddr >> PAGE_SHIFT) + i, prot))
    return s._replace(domains=s.domains.set(domain, d._replace(iova=table))), 0


def iommu_unmap(s: SystemState, domain: int, iova: int, size: int) -> tuple[SystemState, int]:
    """Unmap up to ``size`` bytes at ``iova``; stops at the first hole.  Returns the number
    of bytes unmapped (0 for a misaligned request, as the kernel's pr_err path).  The IOTLB and
    ATCs are invalidated for the range (``iommu_iotlb_sync``).
    Models: drivers/iommu/iommu.c ``iommu_unmap()``."""
    d = _paging(s, domain)
    if (iova | size) & (PAGE_SIZE - 1) or size <= 0 or \
            d.type not in (DomainType.UNMANAGED, DomainType.DMA):
        return s, 0
    first = iova >> PAGE_SHIFT
    table = d.iova
    done = 0
    while done < size >> PAGE_SHIFT and first + done in table:
        table = table.delete(first + done)
        done += 1
    if not done:
        return s, 0
    s = s._replace(domains=s.domains.set(domain, d._replace(iova=table)))
    s = flush_domain_range(s, domain, first, done)
    for nested in [k for k, v in s.domains.items() if v.parent == domain]:
        # a nesting parent's invalidation covers the nested domains' cached translations
        # (intel cache tags / arm-smmu-v3 S2 VMID invalidation)
        s = flush_domain_range(s, nested, first, done)
    return s, done << PAGE_SHIFT
