"""Symmetry reduction for the PASID model: ``canonical(check_state)`` (issue 5).

**Renamed.**  Ids come from one counter (``next_id``), so interleavings creating the same
objects in another order reach states that differ only in ids.  Every id ``>= base``
(``next_id`` at boot) is renamed ``base, base+1, ...`` by first appearance in a traversal that
never looks at id values: actors in (permuted) order → task → process → mm → SVA domains, VMAs
→ threads → files (fd order) → handles → domains ...; id-kind ``binds`` in slot order; groups in
config order (domains, owner, ``pasid_array``); PASID-keyed tables; IOPF queues, IH ring,
breaches, warnings; then objects no root reaches, by id.  Ids live in every id-keyed table, the
record fields of :data:`_SPEC`, ``Group.owner`` (iff the scenario's owner cookies are iommufd
contexts), ``pasid_array``, ``pasid_table``/``amdgpu_pending`` values, IOTLB keys / ATC values,
``ih_ring``, breaches 2 (mms) and 3 (files), :data:`_WARN_IDS`, an SVA
handle's ``drvdata`` (a file), ``File.drvdata`` as its plug-in packs it (``amdgpu``: ``fence <<
20 | pasid``; ``vfio-pci`` and kernel-held idevs: the iommufd context; others: 0), ``tids``;
at lock granularity the calls in progress (``kthreads``, keyed by context: a task id, or
``KTHREAD_CTX`` + a kernel actor's index, which the actor permutation moves): the call's id
arguments and id return, each frame's id locals (:data:`_FRAME_KINDS`; an operation's
one-section wrapper waiting at its start: the op's parameters), the files of pending task
work, and the holder of each lock (lock keys hold device indices, never ids); the calls in
progress are labelled with their actor, outermost frame first.  An id anywhere else (new
plug-in, Warn code, breach, a frame of unknown layout) leaves the state unchanged (sound).
**Kept:** ids below ``base`` (boot default domains), PASIDs, device/group/IOMMU/driver indices,
frame positions, lock keys, addresses, cache sequence numbers, every tuple order.  Where a call
in progress compares ids by order (``dev_open`` gives its file id back when it is the last one
drawn, ``next_id == fid + 1``), only ``next_id`` differs afterwards, which the renaming of the
next state normalises (the file is gone).

**Binding kinds.**  A slot holds ids iff its op returns one (:data:`_ID_RETURNS`: tids of
``process_create``/``clone_thread``/``fork``, files of ``dev_open``/``*_bind_iommufd``, VMAs of
``mmap``, handles, fences, domains, sets, iommufd objects, descriptors); the others return
values (PASIDs of ``enqcmd``/``ioasid_alloc``, addresses of ``mmap_anon``/``touch``, counts,
-errno).  Symmetry is off (``reason``) when steps mix the kinds (a constant id ``>= base``, a
value used as an id or back, an ``expect`` of a constant id, constant and iommufd owner
cookies together) or use an op missing from the tables.

**Actors.**  Root actors (started by setup, or kernel actors) whose trees (with the children
their ``fork``/``clone`` steps spawn) have equal programs up to a bijection of actors and slots,
and whose slots no outside actor touches, are interchangeable once setup is done; the swap of
each two neighbours of a class is verified on the programs (those swaps generate every
permutation of the class), and a permutation permutes ``pcs``, ``tids`` and ``binds``.  No
permutation is searched: each class's members are sorted by their id-free tree summaries and
only members with equal summaries (ties) are permuted; among those orders the renamed state of
least (strong) hash is the canonical form.  Beyond :data:`_MAX_TIE_PERMS` orders of ties, ties
keep their index order (still a symmetric image: sound, only less reduced).

**Soundness.**  ``canonical(s)`` is ``s`` under an id bijection (fixed below ``base``;
``next_id' = base + #ids`` exceeds every name, so allocations map ``next_id + k`` to ``next_id'
+ k``) and a symmetry of the programs: ``s`` and ``canonical(s)`` are bisimilar as steps and
checks compare ids for equality.  Where the model orders ids the order is kept: ``wq_drain``
completes descriptors of one (device, PASID) by id; ``sorted(files)`` in driver ``remove``,
E0's ``mm_exit`` and ``amdgpu_ih_process`` (ambiguous only if amdgpu PASIDs are freed by hand):
file order is kept while such a step may still run; ``sorted(handles)`` in E0's
``io_mm_exit``; iommufd object order while an automatic hwpt exists (they are tried in id
order).  Harmless: ``hw.enabled_events`` sorts only to list actions,
``iommu_sva_invalidate_kva_range`` only to flush; ``0 < ictx < next_id`` holds after renaming.
"""

from __future__ import annotations

from itertools import permutations, product
from math import factorial
from typing import Any

from immutables import Map

from ..errors import Warn
from ..iopf import IopfGroup
from ..hw.wq import Desc
from ..scenario.compile import CONST, REF
from ..scenario.schema import Ref
from ..locking import DO, KFUNCS, KTHREAD_CTX
from ..state import (IFD_AUTO_DOMAIN, Domain, File, Group, Handle, HandleKind, IfdFault, IfdObj,
                     Ioasid, IoasidSet, KFrame, Mm, Proc, Task, Vma, Work)
from ..step import OP_BY_NAME, OPS
from .pasid_model import CheckState

VAL, ID, COOKIE = 0, 1, 2
_ID_PARAMS = frozenset("tid mm fd vma handle domain fence set token desc ictx ioas pt_id idev "
                       "obj_id fault_id fault cookie hwpt".split())
_OP_ID_PARAMS = {"iommu_sva_bind_device": frozenset({"drvdata"})}  # drivers store a file id
_ID_RETURNS = frozenset(
    "process_create clone_thread fork dev_open mmap iommu_sva_bind_device "
    "iommu_attach_handle_get dma_fence_create amdgpu_cs_submit iommu_domain_alloc_paging "
    "iommufd_hwpt_alloc ioasid_set_alloc iommufd_ctx_create iommufd_ioas_alloc "
    "iommufd_device_bind vfio_device_bind_iommufd wq_submit amdgpu_ih_process "
    "iommufd_viommu_alloc iommufd_fault_alloc iommufd_fault_fops_read".split())
_VALUE_RETURNS = frozenset(
    "iommu_alloc_global_pasid iommu_free_global_pasid ioasid_alloc ioasid_free ioasid_get "
    "ioasid_put ioasid_find ioasid_set_data ioasid_register_allocator "
    "ioasid_unregister_allocator amdgpu_pasid_alloc amdgpu_pasid_free amdgpu_pasid_free_delayed "
    "dma_fence_signal iommu_domain_free iommu_attach_device_pasid iommu_detach_device_pasid "
    "iommu_replace_device_pasid iommu_device_use_default_domain "
    "iommu_device_unuse_default_domain iommu_group_claim_dma_owner iommu_device_claim_dma_owner "
    "iommu_group_release_dma_owner iommu_device_release_dma_owner iommu_group_dma_owner_claimed "
    "iommu_attach_device iommu_detach_device iommu_attach_group iommu_detach_group "
    "iommu_group_finalize device_driver_attach device_release_driver iommu_sva_get_pasid "
    "iommu_sva_unbind_device ioasid_set_free task_exit close munmap exc_general_protection "
    "enqcmd dma dma_complete wq_drain iommu_report_device_fault iopf_handle "
    "iopf_queue_flush_dev iopf_queue_add_device iopf_queue_remove_device iommu_map iommu_unmap "
    "mmap_anon mprotect munmap_range touch iommufd_hwpt_destroy iommufd_device_unbind "
    "iommufd_device_attach iommufd_device_replace iommufd_device_detach vfio_group_get_status "
    "vfio_group_set_container vfio_group_unset_container amdgpu_vm_fault "
    "arch_prctl_enable_tagged_addr arch_prctl_force_tagged_sva iommu_sva_invalidate_kva_range "
    "pci_dev_reset_iommu_prepare pci_dev_reset_iommu_done iommufd_destroy iommufd_get_hw_info "
    "iommufd_fault_fops_write execve pci_enable_pasid pci_disable_pasid pci_pasid_features "
    "pci_max_pasids pci_pasid_status uacce_fops_unl_ioctl iommu_sva_alloc_pasid "
    "iommu_sva_free_pasid iommu_attach_device_shared iommu_detach_device_shared "
    "iommu_sva_device_init iommu_sva_device_shutdown".split())
_AMDGPU_FREE = frozenset({"amdgpu_pasid_free", "amdgpu_pasid_free_delayed"})
#: Warn code -> which of its two args are ids; a code not listed is unknown
_WARN_IDS = {Warn.USE_AFTER_FREE: (1, 0), Warn.REPLACE_SAME_HANDLE: (1, 0),
             Warn.MMU_NOTIFIER_REGISTER_BUG: (1, 0), Warn.DOMAIN_USE_AFTER_FREE: (1, 0),
             Warn.IOASID_WRONG_SET: (0, 1), Warn.DETACH_WRONG_DOMAIN: (0, 1)}
_WARN_IDS.update(dict.fromkeys((
    Warn.FREE_INVALID_PASID, Warn.FREE_UNALLOCATED_PASID, Warn.UNUSE_DEFAULT_DOMAIN,
    Warn.RELEASE_DMA_OWNER, Warn.CLAIM_NULL_OWNER, Warn.IOASID_UNKNOWN,
    Warn.ALLOCATOR_NOT_REGISTERED, Warn.ALLOCATOR_ORPHANS, Warn.BUG_ON,
    Warn.PASID_PUT_UNDERFLOW, Warn.IOPF_FLUSH_NO_PARAM, Warn.RESET_UNDERFLOW,
    Warn.MM_EXIT_LEAK, Warn.PCI_PASID_ENABLED, Warn.PCI_PASID_NOT_ENABLED,
    Warn.IOPF_GROUP_USE_AFTER_FREE, Warn.DMA_OWNER_NOT_DEFAULT, Warn.IOPF_DISABLE_UNBALANCED,
    # a lock key (class, kind, instance: a device index or 0, never an object id) and a
    # context kind
    Warn.SLEEP_IN_ATOMIC, Warn.INCONSISTENT_LOCK_STATE), (0, 0)))
_BREACH_IDS = {1: False, 2: True, 3: True}  # STALE_TRANSLATION, FOREIGN_COMPLETION, MISATTR.
#: orders of tied actors (equal tree summaries) tried at most per state (4 tied: 24)
_MAX_TIE_PERMS = 24
#: lock granularity: the kinds of a frame's locals ``(ret, *params, appended...)`` of every
#: kernel function with a preemption point (the only frames alive between two steps), by
#: name.  A frame of a function not listed, or with more locals than listed, leaves the
#: state unchanged (sound).  ``dev_open``: ``(ret, tid, dev, file)``, ret 0/-errno until it
#: is the new file; ``uacce_fops_open``: ``(ret, file, tid)``; the releases of
#: ``drivers.base.teardown_code``: ``(ret, file, handle, pasid)``; bind: ``(handle, dev, mm,
#: drvdata (a file), flags)``; unbind: ``(ret, handle)``; ``__fput``: ``(ret, file)``.
_V, _I = 0, 1
_FRAME_KINDS = {
    "__fput": (_V, _I), "dev_open": (_I, _I, _V, _I), "uacce_fops_open": (_V, _I, _I),
    "idxd_cdev_release": (_V, _I, _I, _V), "uacce_fops_release": (_V, _I, _I, _V),
    "uacce_put_queue": (_V, _I, _I, _V),
    "iommu_sva_bind_device": (_I, _V, _I, _I, _V), "iommu_sva_unbind_device": (_V, _I)}
_frame_cache: dict = {}


def _frame_kinds(fn: int) -> tuple | None:
    """The kinds of the locals of a frame of KFunc index ``fn``: :data:`_FRAME_KINDS`, or,
    for the one-section wrapper of an operation (``step._plain``: alive between steps only
    while it waits for a lock at its start, ``Blocked``), ``(ret, *the op's params)``; None
    for an unknown layout."""
    kinds = _frame_cache.get(fn)
    if kinds is None and fn not in _frame_cache:
        f = KFUNCS[fn]
        kinds = _FRAME_KINDS.get(f.name)
        op = OP_BY_NAME.get(f.name)
        if kinds is None and op is not None and len(f.code) == 1 and f.code[0].op == DO:
            kinds = (_I if f.name in _ID_RETURNS else _V,) + Symmetry._op_kinds(op.code)
        _frame_cache[fn] = kinds
    return kinds


#: task work a call in progress may hold (``KThread.pending``): which arguments are ids
_PENDING_IDS = {Work.FPUT: (True,)}


def _spec(cls, **kinds) -> tuple:
    """(field index, 1 = id | 2 = tuple of ids | 3 = tuple of records) by field order."""
    return tuple(sorted((cls._fields.index(f), k) for f, k in kinds.items()))


#: the id fields of each record type (File/Handle ``drvdata`` and ``Group.owner`` apart)
_SPEC = {Task: _spec(Task, pid=1, mm=1), Proc: _spec(Proc, mm=1, threads=2, files=2),
         Mm: _spec(Mm, sva_domains=2, vmas=3), Vma: _spec(Vma, id=1, file=1),
         File: _spec(File, mm=1, handles=2), Domain: _spec(Domain, mm=1, parent=1),
         IfdObj: _spec(IfdObj, ictx=1, parent=1, fault=1, faults=3),
         IfdFault: _spec(IfdFault, cookie=1, handle=1),
         Handle: _spec(Handle, domain=1), IoasidSet: _spec(IoasidSet, token=1),
         Ioasid: _spec(Ioasid, set=1), Desc: _spec(Desc, mm=1),
         IopfGroup: _spec(IopfGroup, id=1, domain=1),
         Group: _spec(Group, default_domain=1, blocking_domain=1, domain=1)}


def _walk(x, see) -> None:
    for i, k in _SPEC[type(x)]:
        if k == 1:
            see(x[i])
        else:
            for y in x[i]:
                _walk(y, see) if k == 3 else see(y)


def _map(x, r):
    vals = list(x)
    for i, k in _SPEC[type(x)]:
        v = vals[i]
        vals[i] = r(v) if k == 1 else tuple(_map(y, r) if k == 3 else r(y) for y in v)
    return tuple.__new__(type(x), vals)


class Canonical(CheckState):
    """A canonical :class:`CheckState` (a marker type: equal and hashed as a tuple, and
    ``SystemState``'s hash is structural)."""

    __slots__ = ()

    def __hash__(self) -> int:
        rs = self.rs
        return hash((rs.sys, rs.pcs, rs.tids, rs.binds) + tuple(self[1:]))


class _Unknown(Exception):
    """An id in a place this module does not know."""


def _step_key(cs, smap, amap) -> tuple:
    """A compiled step with its slots and spawned actor mapped (source locations dropped)."""
    chk = None
    if cs.check is not None:
        model, groups, slots = cs.check
        chk = []
        for key in type(model).model_fields:
            v = getattr(model, key)
            if isinstance(v, list):
                v = tuple(("$", smap(slots[x.name])) if isinstance(x, Ref) else x for x in v)
            elif isinstance(v, dict):
                v = tuple(sorted((groups[n], g.model_dump_json()) for n, g in v.items()))
            chk.append(v)
    e = cs.expect
    return (cs.op, tuple((k, smap(v) if k == REF else v) for k, v in cs.args),
            chk and tuple(chk), None if e is None else (e.kind, e.value),
            smap(cs.expect_slot) if cs.expect_slot >= 0 else -1,
            smap(cs.bind) if cs.bind >= 0 else -1, amap(cs.spawn) if cs.spawn >= 0 else -1,
            frozenset(smap(k) for k in cs.needs), cs.fail and cs.fail[:2])


class Symmetry:
    """The symmetry of one compiled scenario (module docstring).  ``reason``: why it is off
    (None: on); ``classes``: interchangeable root actors (verified swaps); ``ident``: the
    identity ``(actor_order, slot_order)`` (canonical position -> raw index); ``fallbacks``:
    states left unchanged because an id sat in an unknown place."""

    def __init__(self, compiled) -> None:
        self.c = c = compiled
        self.base = c.initial().sys.next_id
        self.n, self.nslots = len(c.actors), len(c.names)
        self.setup_len = len(c.actors[0].program)
        self.ident = (tuple(range(self.n)), tuple(range(self.nslots)))
        self.classes, self.roots, self.fallbacks = [], (), 0
        self.trees: dict = {}
        self.slots: dict = {}
        self.kinds: list = [None] * self.nslots
        self.reason = self._check_kinds()
        self.kinds = [k or VAL for k in self.kinds]
        ops = {OPS[cs.op].name for a in c.actors for cs in a.program}
        self.static_file_order = bool(c.policy.mm_exit_callback or ops & _AMDGPU_FREE)
        self.future_remove = [[any(OPS[x.op].name == "device_release_driver"
                                   for x in a.program[pc:]) for pc in range(len(a.program) + 1)]
                              for a in c.actors]
        if self.reason is None:
            self._find_perms()

    # -- static analysis --------------------------------------------------------------------
    def _check_kinds(self) -> str | None:
        c, base, kinds, cookies = self.c, self.base, self.kinds, set()
        steps = [cs for a in c.actors for cs in a.program]
        for cs in steps:
            op = OPS[cs.op].name
            if op not in _ID_RETURNS | _VALUE_RETURNS:
                return f"unknown operation {op}"
            if cs.bind >= 0:
                ret = ID if op in _ID_RETURNS else VAL
                if kinds[cs.bind] not in (None, ret):
                    return f"${c.names[cs.bind]} is bound to ids and values"
                kinds[cs.bind] = ret
            if op in ("iommufd_device_bind", "vfio_device_bind_iommufd"):
                cookies.add(ID)  # the iommufd context becomes the group's owner
        for cs in steps:
            op = OPS[cs.op]
            for p, (k, v) in zip(op.params, cs.args):
                want = ID if p in _ID_PARAMS or p in _OP_ID_PARAMS.get(op.name, ()) else \
                    COOKIE if p in ("owner", "container") else VAL
                if k == CONST and want == ID and v >= base:
                    return f"{op.name}: constant id {p}={v}"
                if k == CONST and want == COOKIE and v:
                    cookies.add(VAL)
                elif k == REF and want == COOKIE:
                    cookies.add(ID if kinds[v] == ID else VAL)
                elif k == REF and kinds[v] not in (None, want):
                    return f"{op.name}: {p}=${c.names[v]} mixes ids and values"
                elif k not in (CONST, REF) and want != ID:  # SELF_TID / SELF_MM are ids
                    return f"{op.name}: {p}=self is an id"
            ret, e = ID if op.name in _ID_RETURNS else VAL, cs.expect
            if e is not None and e.kind == "ref" and kinds[cs.expect_slot] not in (None, ret):
                return f"{op.name}: expect ${e.ref} compares an id and a value"
            if e is not None and e.kind == "eq" and ret == ID and e.value >= base:
                return f"{op.name}: expects the constant id {e.value}"
            if cs.check is not None and any(kinds[k] == ID for k in cs.check[2].values()):
                return f"{op.name}: check uses an id as a PASID"
        if cookies == {ID, VAL}:
            return "owner cookies are both constants and iommufd contexts"
        self.owner_is_id = ID in cookies
        return None

    def _find_perms(self) -> None:
        c, n = self.c, self.n
        kids = {a: [cs.spawn for cs in c.actors[a].program if cs.spawn >= 0] for a in range(n)}
        spawned = {x for a in range(1, n) for x in kids[a]}
        root_slot = {cs.spawn: cs.bind for cs in c.actors[0].program if cs.spawn >= 0}
        touched = {a: {x for cs in c.actors[a].program for x in (
            *(v for k, v in cs.args if k == REF), *cs.needs, cs.bind, cs.expect_slot,
            *(cs.check[2].values() if cs.check is not None else ()))} for a in range(1, n)}
        trees, slots, by_sig = {}, {}, {}
        for r in (r for r in range(1, n) if r not in spawned):
            tree, todo = [], [r]
            while todo:
                tree.append(todo.pop(0))
                todo[:0] = kids[tree[-1]]
            loc = {root_slot[r]: 0} if root_slot.get(r, -1) >= 0 else {}
            aloc = {a: i for i, a in enumerate(tree)}
            sig = tuple((c.actors[a].kernel, tuple(
                _step_key(cs, lambda k: loc.setdefault(k, len(loc)), aloc.__getitem__)
                for cs in c.actors[a].program)) for a in tree)
            if not any(touched[b] & set(loc) for b in range(1, n) if b not in aloc):
                trees[r], slots[r] = tree, list(loc)  # its bindings are its own
                by_sig.setdefault(sig, []).append(r)
        for members in by_sig.values():
            # the whole class is symmetric when each swap of two neighbours is: swaps of
            # neighbours generate every permutation, and a composition of program symmetries
            # is one (no factorial enumeration: 8 identical processes are 7 checks, not 40,320)
            if len(members) >= 2 and all(self._verify(*self._swap(trees, slots, x, y))
                                         for x, y in zip(members, members[1:])):
                self.classes.append(members)
        self.trees, self.slots = trees, slots
        self.roots = tuple(r for cl in self.classes for r in cl)

    def _swap(self, trees, slots, x, y) -> tuple[list, list]:
        """``(amap, smap)`` exchanging root ``x``'s tree and slots with root ``y``'s."""
        amap, smap = list(range(self.n)), list(range(self.nslots))
        for r, r2 in ((x, y), (y, x)):
            for a, a2 in zip(trees[r], trees[r2]):
                amap[a] = a2
            for k, k2 in zip(slots[r], slots[r2]):
                smap[k] = k2
        return amap, smap

    def _verify(self, amap, smap) -> bool:
        """Does every actor's program, mapped by (amap, smap), equal actor amap[a]'s?"""
        acts, same = self.c.actors, (lambda k: k)
        if len(set(amap)) != self.n or len(set(smap)) != self.nslots:
            return False
        return all(acts[a].kernel == acts[amap[a]].kernel and
                   len(acts[a].program) == len(acts[amap[a]].program) and
                   all(_step_key(x, smap.__getitem__, amap.__getitem__) == _step_key(y, same, same)
                       for x, y in zip(acts[a].program, acts[amap[a]].program))
                   for a in range(1, self.n))

    # -- per state ---------------------------------------------------------------------------
    def canonical(self, cs: Any) -> Canonical:
        """The representative of ``cs``'s symmetry class."""
        if self.reason is not None:
            return Canonical(*cs)
        rs, perms, watch = cs.rs, [self.ident], frozenset()
        if self.classes and rs.pcs[0] >= self.setup_len:
            perms, watch = self._orders(rs)
        try:
            self._named_elsewhere = False
            cands = [Canonical(self._relabel(rs, ao, so, watch), *cs[1:]) for ao, so in perms]
            if self._named_elsewhere:  # a gone member's id is still named: permute them too
                perms, _ = self._orders(rs, collapse_gone=False)
                cands = [Canonical(self._relabel(rs, ao, so), *cs[1:]) for ao, so in perms]
        except (_Unknown, KeyError):  # an unknown Warn code or breach, an id never labelled
            self.fallbacks += 1
            return Canonical(*cs)
        return cands[0] if len(cands) == 1 else min(cands, key=hash)

    def _orders(self, rs, collapse_gone: bool = True) -> tuple[list[tuple[tuple, tuple]],
                                                                 frozenset]:
        """The candidate ``(actor_order, slot_order)`` of a state past setup: in each class
        the members sorted by their id-free tree summaries (:meth:`_tree_key`) take the
        class's positions in that order; only members with equal summaries (ties) are
        permuted, every order of them while there are at most :data:`_MAX_TIE_PERMS`, else
        in index order (sound either way: every order is a symmetry; only the reduction may
        be less than complete for more ties than that).  Inert ties (:meth:`_inert`) keep
        index order; with ``collapse_gone`` false, only those that have not run.  Also
        returns the ids of the members of gone ties kept in index order (their task ids and
        the ids their slots were bound to): :meth:`canonical` checks that nothing else in
        the state names them."""
        placements = []  # per class: [(positions, candidate member orders)]
        total = 1
        watch: set = set()
        for cl in self.classes:
            key = {r: self._tree_key(rs, r) for r in cl}
            ranked = sorted(cl, key=key.__getitem__)
            options, i = [], 0
            while i < len(ranked):
                j = i + 1
                while j < len(ranked) and key[ranked[j]] == key[ranked[i]]:
                    j += 1
                tie = ranked[i:j]
                inert = len(tie) > 1 and self._inert(key[tie[0]])
                if inert and not self._unstarted(key[tie[0]]):
                    if collapse_gone:
                        for r in tie:
                            watch.update(rs.tids[a] for a in self.trees[r])
                            watch.update(rs.binds[k] for k in self.slots[r]
                                         if self.kinds[k] == ID)
                    else:
                        inert = False
                if len(tie) > 1 and not inert:
                    total *= factorial(len(tie))
                    options.append(tie)
                else:  # one member, or members that own nothing yet or any more
                    options.extend([r] for r in tie)
                i = j
            placements.append((cl, options))
        tie_perms = total <= _MAX_TIE_PERMS
        choices = []
        for cl, options in placements:
            orders = [list(permutations(t)) if tie_perms and len(t) > 1 else [tuple(t)]
                      for t in options]
            choices.append([(cl, sum(pick, ())) for pick in product(*orders)])
        out = []
        trees, slots = self.trees, self.slots
        for combo in product(*choices):
            aorder, sorder = list(range(self.n)), list(range(self.nslots))
            for cl, members in combo:
                for pos, r in zip(cl, members):
                    for a, a2 in zip(trees[pos], trees[r]):
                        aorder[a] = a2
                    for k, k2 in zip(slots[pos], slots[r]):
                        sorder[k] = k2
            out.append((tuple(aorder), tuple(sorder)))
        return out, frozenset(x for x in watch if x >= self.base)

    @staticmethod
    def _inert(key: tuple) -> bool:
        """Does a tree summary say that the tree owns nothing a renaming could tell apart?
        Either it has not run: its root at program counter 0 (it owns only what setup made
        for it) and no other actor with a task; or it is gone: no actor of it has a task or a
        call in progress and no object its id slots were bound to is alive (a design's leak
        behind an exited process -- an mm, a PASID -- is reached through those slots and
        keeps the members apart).  Tied members of that kind are alike but for ids: every
        order of them renames to the same state, so they are not permuted (index order; were
        a dead id of theirs still named somewhere, a warning say, index order is still a
        symmetric image: sound, only less reduced).  A member with a call in progress (lock
        granularity) is never inert."""
        actors, alive, _values = key
        return Symmetry._unstarted(key) or (
            not any(alive) and all(not k[2] and not k[3] for k in actors))

    @staticmethod
    def _unstarted(key: tuple) -> bool:
        actors = key[0]
        return actors[0][0] == 0 and not actors[0][3] and \
            all(not k[2] and not k[3] for k in actors[1:])

    def _tree_key(self, rs, r) -> tuple:
        """The id-free summary of root ``r``'s tree: per actor its program counter, whether
        it has a task, its call in progress, its task's PASID state, mm and process
        counters; then, per id slot of the tree, whether the object bound to it is alive;
        then what its slots hold other than ids (PASIDs, returns, -errno)."""
        s, out = rs.sys, []
        c, kth = self.c, rs.sys.kthreads
        for a in self.trees[r]:
            t = s.tasks.get(rs.tids[a])
            m, p = (None, None) if t is None else (s.mms.get(t.mm), s.procs.get(t.pid))
            th = kth.get(c.ctx(rs, a)) if kth else None
            call = () if th is None else (th.op, tuple((fr.fn, fr.pc) for fr in th.frames),
                                          th.wait, len(th.held), len(th.pending))
            out.append((rs.pcs[a], rs.tids[a] > 0, t is not None, call) + (() if t is None else (
                t.pasid_activated, t.msr,
                () if m is None else (m.pasid, m.state, m.mm_users, m.mm_count, len(m.vmas)),
                () if p is None else (len(p.threads), len(p.files)))))
        kinds, binds = self.kinds, rs.binds
        base = self.base
        alive = tuple(any(binds[k] in tb for tb in (s.tasks, s.procs, s.mms, s.files, s.domains,
                                                     s.handles, s.ioasid_sets, s.ifd,
                                                     s.inflight, s.fences))
                      for k in self.slots[r] if kinds[k] == ID)
        # an id slot holding no id (unbound, or an -errno return) holds a value
        return tuple(out), alive, tuple((0, binds[k]) if kinds[k] != ID or binds[k] < base
                                        else (1, 0) for k in self.slots[r])

    def _drvdata(self, s, f) -> str:
        """How ``f.drvdata`` holds ids: "" none, "id" an iommufd context, "amdgpu" a fence."""
        if not f.drvdata:
            return ""
        drv = s.devs[f.dev].driver
        kind = s.config.drivers[drv].kind if drv >= 0 else ""
        if not f.mm or kind == "vfio-pci":
            return "id"
        if kind == "amdgpu":
            return kind
        if kind == "uacce":
            return ""  # the queue's state and mapped regions: no ids
        raise _Unknown

    def _relabel(self, rs, aorder, sorder, watch: frozenset = frozenset()):
        """Label every id of ``rs`` in the traversal order of the module docstring, actors
        in ``aorder`` and slots in ``sorder``, and return the renamed run state.  Sets
        ``_named_elsewhere`` when an id of ``watch`` is met other than as an actor's task id
        or a slot's binding."""
        s, base, lab, queue = rs.sys, self.base, {}, []
        tables = (s.tasks, s.procs, s.mms, s.files, s.domains, s.handles, s.ioasid_sets,
                  s.ifd, s.inflight)

        def see(x):
            if x >= base:
                if x not in lab:
                    lab[x] = base + len(lab)
                    queue.append(x)
                if watch and x in watch:
                    self._named_elsewhere = True

        def see_root(x):
            if x >= base and x not in lab:
                lab[x] = base + len(lab)
                queue.append(x)

        def close():
            while queue:
                x = queue.pop(0)
                for table in tables:
                    rec = table.get(x)
                    if rec is not None:
                        _walk(rec, see)
                        if type(rec) is File and self._drvdata(s, rec):
                            see(rec.drvdata >> 20 if self._drvdata(s, rec) == "amdgpu"
                                else rec.drvdata)
                        elif type(rec) is Handle and rec.kind == HandleKind.SVA:
                            see(rec.drvdata)
                        elif type(rec) is Handle and rec.kind != HandleKind.IOMMUFD and rec.drvdata:
                            raise _Unknown

        kth = s.kthreads
        for a in aorder:
            see_root(rs.tids[a])
            close()
            if kth:
                th = kth.get(self.c.ctx(rs, a))
                if th is not None:
                    self._thread_ids(th, see)
                    close()
        if kth:  # contexts of no actor (none in the compiled scenarios): by id
            ctxs = {self.c.ctx(rs, a) for a in range(self.n)}
            for x, th in sorted(kth.items()):
                if x not in ctxs:
                    if x >= KTHREAD_CTX:
                        raise _Unknown
                    see(x)
                    self._thread_ids(th, see)
                    close()
        for k in sorder:
            if self.kinds[k] == ID:
                see_root(rs.binds[k])
        for g in s.groups:
            _walk(g, see)
            if self.owner_is_id:
                see(g.owner)
            for _p, d, h in g.pasid_array:
                see(d), see(h)
        close()
        for x in [f for _p, f in sorted(s.amdgpu_pending.items())] + \
                [i.set for _p, i in sorted(s.ioasids.items())] + \
                [v[0] for _k, v in sorted(s.pasid_table.items())] + [e[2] for e in s.ih_ring]:
            see(x)
        for _d, q in sorted(s.iopf.items()):
            for g in q.groups + q.stale:
                _walk(g, see)
        for b in s.breaches:
            if _BREACH_IDS[b[0]]:
                see(b[3]), see(b[4])
        for c, a, b in s.warnings:
            ia, ib = _WARN_IDS[c]
            see(a if ia else 0), see(b if ib else 0)
        if s.work:  # step drains deferred work before it returns: never seen between steps
            raise ValueError("canonical form of a state with deferred work queued")
        close()
        inflight = s.inflight  # then objects no root reaches (rare) by id, descriptors by
        for x in [x for tb in tables[:-1] + (s.fences,) for x in sorted(tb.keys())] + sorted(
                inflight.keys(), key=lambda x: (inflight[x].dev, inflight[x].pasid, x)):
            see(x)  # (device, PASID, id)
            close()
        # order-preserving within the classes whose id order a future step may observe
        classes: dict = {}
        for x, q in inflight.items():
            classes.setdefault((q.dev, q.pasid), []).append(x)
        if self.static_file_order or any(fr[pc] for fr, pc in zip(self.future_remove, rs.pcs)):
            classes["files"] = list(s.files.keys())
        if self.c.policy.mm_exit_callback:
            classes["handles"] = list(s.handles.keys())
        if any(o.flags & IFD_AUTO_DOMAIN for o in s.ifd.values()):
            classes["ifd"] = list(s.ifd.keys())  # automatic hwpts are tried in id order
        for members in classes.values():
            members = sorted(x for x in members if x >= base)
            for x, label in zip(members, sorted(lab[x] for x in members)):
                lab[x] = label
        return self._rename(rs, lab, aorder, sorder)

    @staticmethod
    def _op_kinds(op: int) -> tuple:
        """Which arguments of operation ``op`` are ids (True)."""
        o = OPS[op]
        extra = _OP_ID_PARAMS.get(o.name, ())
        return tuple(p in _ID_PARAMS or p in extra for p in o.params)

    def _thread_ids(self, th, see) -> None:
        """Label the ids of a call in progress in an id-free order: the call's arguments,
        its return (an op returning ids), each frame's id locals (outermost first), the task
        work it queued.  _Unknown for a frame or work item of unknown layout."""
        if th.op >= 0:
            for v, isid in zip(th.args, self._op_kinds(th.op)):
                if isid:
                    see(v)
            if OPS[th.op].name in _ID_RETURNS:
                see(th.ret)
        for fr in th.frames:
            kinds = _frame_kinds(fr.fn)
            if kinds is None or len(fr.loc) > len(kinds):
                raise _Unknown
            for v, k in zip(fr.loc, kinds):
                if k:
                    see(v)
        for w in th.pending:
            ids = _PENDING_IDS.get(w[0])
            if ids is None or len(w) - 1 > len(ids):
                raise _Unknown
            for v, isid in zip(w[1:], ids):
                if isid:
                    see(v)

    def _rename(self, rs, lab, aorder, sorder):
        s, base = rs.sys, self.base

        def r(x):
            return x if x < base else lab[x]

        newpos = {a: i for i, a in enumerate(aorder)}

        def ctx(x):  # a task id, or a kernel actor's context (KTHREAD_CTX + its index)
            return KTHREAD_CTX + newpos[x - KTHREAD_CTX] if x >= KTHREAD_CTX else r(x)

        def thread(th):
            args, ret = th.args, th.ret
            if th.op >= 0:
                args = tuple(r(v) if isid else v
                             for v, isid in zip(args, self._op_kinds(th.op))) + args[
                                 len(self._op_kinds(th.op)):]
                if OPS[th.op].name in _ID_RETURNS:
                    ret = r(ret)
            frames = tuple(KFrame(fr.fn, fr.pc, tuple(
                r(v) if k else v for v, k in zip(fr.loc, _frame_kinds(fr.fn))))
                for fr in th.frames)
            pending = tuple((w[0],) + tuple(r(v) if isid else v
                                            for v, isid in zip(w[1:], _PENDING_IDS[w[0]]))
                            for w in th.pending)
            return th._replace(args=args, ret=ret, frames=frames, pending=pending)

        def table(m, fn, keys=True):
            return Map({r(k) if keys else k: fn(v) for k, v in m.items()}) if m else m

        def rec(x):
            return _map(x, r)

        def file(f):
            f, how = _map(f, r), self._drvdata(s, f)
            d = f.drvdata
            return f._replace(drvdata=(r(d >> 20) << 20 | d & 0xFFFFF) if how == "amdgpu"
                              else r(d) if how else d)

        def group(g):
            g = _map(g, r)._replace(pasid_array=tuple((p, r(d), r(h))
                                                       for p, d, h in g.pasid_array))
            return g._replace(owner=r(g.owner)) if self.owner_is_id else g

        def warn(w):
            ia, ib = _WARN_IDS[w[0]]
            return (w[0], r(w[1]) if ia else w[1], r(w[2]) if ib else w[2])

        sys2 = s._replace(
            mms=table(s.mms, rec), tasks=table(s.tasks, rec), procs=table(s.procs, rec),
            files=table(s.files, file), groups=tuple(map(group, s.groups)),
            domains=table(s.domains, rec), ioasid_sets=table(s.ioasid_sets, rec),
            ifd=table(s.ifd, rec),
            handles=table(s.handles, lambda h: _map(h, r)._replace(drvdata=r(h.drvdata))
                          if h.kind == HandleKind.SVA else _map(h, r)),
            inflight=table(s.inflight, rec), fences=table(s.fences, lambda v: v),
            pasid_table=table(s.pasid_table, lambda v: (r(v[0]),) + v[1:], False),
            ioasids=table(s.ioasids, rec, False), amdgpu_pending=table(s.amdgpu_pending, r, False),
            iotlb=Map({k[:1] + (r(k[1]),) + k[2:]: v for k, v in s.iotlb.items()}) if s.iotlb
            else s.iotlb,
            atc=table(s.atc, lambda v: v[:3] + (r(v[3]),) + v[4:], False),
            iopf=table(s.iopf, lambda q: q._replace(groups=tuple(map(rec, q.groups)),
                                                    stale=tuple(map(rec, q.stale))), False),
            breaches=tuple(b[:3] + (r(b[3]), r(b[4])) if _BREACH_IDS[b[0]] else b
                           for b in s.breaches),
            ih_ring=tuple(e[:2] + (r(e[2]),) for e in s.ih_ring),
            warnings=tuple(map(warn, s.warnings)), next_id=base + len(lab),
            kthreads=Map({ctx(k): thread(v) for k, v in s.kthreads.items()}) if s.kthreads
            else s.kthreads,
            locks=Map({k: ctx(v) for k, v in s.locks.items()}) if s.locks else s.locks)
        kinds, binds, tids, pcs = self.kinds, rs.binds, rs.tids, rs.pcs
        return type(rs)(sys2, tuple(pcs[a] for a in aorder), tuple(r(tids[a]) for a in aorder),
                        tuple(r(binds[k]) if kinds[k] == ID else binds[k] for k in sorder))


__all__ = ["Symmetry", "Canonical"]
