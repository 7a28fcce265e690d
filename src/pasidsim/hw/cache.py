"""IOTLB (per IOMMU unit) and ATC (per ATS-capable device) translation caches.

IOTLB entries are tagged ``(iommu, domain, pasid, vpage)``; ATC entries ``(dev, pasid, vpage)``
and remember the domain they came from.  Each holds ``(pfn, prot, seq)``; when a cache is full
the oldest entry (lowest ``seq``) is evicted.  Capacities come from the Config
(``IommuUnit.iotlb_entries``, ``DeviceConfig.atc_entries``).  Invalidation is synchronous:
when a flush function returns, no cache holds a translation it removed.

Hardware modeled: VT-d 4.0 §6.5 (IOTLB invalidation, PASID-based IOTLB and device-TLB
invalidation), SMMUv3 CMD_TLBI_*/CMD_ATC_INV, PCIe 6.0 §10 (ATS invalidation).
"""

from __future__ import annotations

from ..state import DomainType, SystemState


def iotlb_fill(s: SystemState, unit: int, domain: int, pasid: int, vpage: int, pfn: int,
               prot: int) -> SystemState:
    """Insert an IOTLB entry (evicting the unit's oldest when full)."""
    cap = s.config.iommus[unit].iotlb_entries
    if cap <= 0:
        return s
    iotlb = s.iotlb
    mine = [(v[2], k) for k, v in iotlb.items() if k[0] == unit] if len(iotlb) >= cap else ()
    if len(mine) >= cap:
        iotlb = iotlb.delete(min(mine)[1])
    seq = s.cache_seq
    return s._replace(iotlb=iotlb.set((unit, domain, pasid, vpage), (pfn, prot, seq)),
                      cache_seq=seq + 1)


def atc_fill(s: SystemState, dev: int, domain: int, pasid: int, vpage: int, pfn: int,
             prot: int) -> SystemState:
    """Insert a device ATC entry for an ATS-capable device (oldest evicted when full)."""
    dc = s.config.devices[dev]
    if not dc.ats or dc.atc_entries <= 0:
        return s
    atc = s.atc
    if len(atc) >= dc.atc_entries:
        mine = [(v[2], k) for k, v in atc.items() if k[0] == dev]
        if len(mine) >= dc.atc_entries:
            atc = atc.delete(min(mine)[1])
    seq = s.cache_seq
    return s._replace(atc=atc.set((dev, pasid, vpage), (pfn, prot, seq, domain)),
                      cache_seq=seq + 1)


def _drop(s: SystemState, iotlb_pred=None, atc_pred=None) -> SystemState:
    if iotlb_pred is not None and s.iotlb:
        dead = [k for k in s.iotlb.keys() if iotlb_pred(k)]
        if dead:
            m = s.iotlb.mutate()
            for k in dead:
                del m[k]
            s = s._replace(iotlb=m.finish())
    if atc_pred is not None and s.atc:
        dead = [k for k, v in s.atc.items() if atc_pred(k, v)]
        if dead:
            m = s.atc.mutate()
            for k in dead:
                del m[k]
            s = s._replace(atc=m.finish())
    return s


def flush_pasid(s: SystemState, dev: int, pasid: int) -> SystemState:
    """PASID-selective invalidation for one device: its unit's IOTLB entries tagged with
    ``pasid`` and the device's ATC entries for ``pasid`` (detach, replace, quiesce)."""
    unit = s.config.device_iommu(dev)
    return _drop(s, lambda k: k[0] == unit and k[2] == pasid,
                 lambda k, v: k[0] == dev and k[1] == pasid)


def flush_dev_atc(s: SystemState, dev: int, pasid: int) -> SystemState:
    """Invalidate device ``dev``'s ATC entries for ``pasid`` only (the IOMMU's IOTLB is left:
    other devices of the domain still use it); what a device fenced for a PCI reset gets when
    its RID moves to the blocking domain."""
    return _drop(s, None, lambda k, v: k[0] == dev and k[1] == pasid)


def flush_domain(s: SystemState, domain: int) -> SystemState:
    """Domain-selective invalidation (domain free, RID domain change)."""
    return _drop(s, lambda k: k[1] == domain, lambda k, v: v[3] == domain)


def flush_domain_range(s: SystemState, domain: int, start: int, npages: int) -> SystemState:
    """Page-selective invalidation of a domain's range (``iommu_unmap``)."""
    end = start + npages
    return _drop(s, lambda k: k[1] == domain and start <= k[3] < end,
                 lambda k, v: v[3] == domain and start <= k[2] < end)


def flush_mm_range(s: SystemState, mm: int, start: int, npages: int) -> SystemState:
    """The mmu-notifier ``arch_invalidate_secondary_tlbs`` of every SVA domain of ``mm``."""
    rec = s.mms.get(mm)
    if rec is None or not rec.sva_domains:
        return s
    doms = set(rec.sva_domains)
    end = start + npages
    return _drop(s, lambda k: k[1] in doms and start <= k[3] < end,
                 lambda k, v: v[3] in doms and start <= k[2] < end)


def entry_is_current(s: SystemState, domain: int, vpage: int, pfn: int, prot: int) -> bool:
    """Does ``domain`` (still) map ``vpage`` to ``pfn`` with at least ``prot``?"""
    d = s.domains.get(domain)
    if d is None:
        return False
    if d.type == DomainType.SVA:
        m = s.mms.get(d.mm)
        cur = m.pt.get(vpage) if m is not None else None
    elif d.type == DomainType.IDENTITY:
        return pfn == vpage
    elif d.type == DomainType.NESTED:
        p = s.domains.get(d.parent)
        cur = p.iova.get(vpage) if p is not None else None
    else:
        cur = d.iova.get(vpage)
    return cur is not None and cur[0] == pfn and (prot & ~cur[1]) == 0
