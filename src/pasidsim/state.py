"""The whole machine as one immutable value.

Records are :class:`typing.NamedTuple` values holding ints, bools and tuples of ints; tables are
:class:`immutables.Map` keyed by integer ids.  Entities refer to each other by id.  Nothing in the
hashed part of a state is a ``str``, ``None`` or an object identity, so ``hash(state)`` is the same
64-bit fingerprint in every interpreter process whatever ``PYTHONHASHSEED`` is.

Conventions (kernel NULL pointers become 0 or a sentinel):
- object ids (mm, task, file, domain, handle, fence, set, VMA) are positive ints drawn from one
  counter, ``SystemState.next_id``; 0 means NULL;
- ``IOMMU_PASID_INVALID`` (0xFFFFFFFF) in :attr:`Mm.pasid` means ``mm->iommu_mm == NULL``;
- the static :class:`~pasidsim.config.Config` and :class:`~pasidsim.policy.Policy` ride along in
  :class:`Static`, whose hash is a constant (they are not state).

Kernel structures modeled: ``struct mm_struct``/``iommu_mm_data`` (include/linux/mm_types.h,
iommu.h), ``struct task_struct`` (pasid_activated), ``struct file``, ``struct iommu_group``,
``struct iommu_domain``, ``struct iommu_sva``/``iommu_attach_handle`` (drivers/iommu/iommu.c,
iommu-sva.c), ``struct ioasid_data``/``ioasid_set`` (drivers/iommu/ioasid.c).
"""

from __future__ import annotations

from enum import IntEnum, unique
from typing import NamedTuple

from immutables import Map

from .config import Config
from .ida import Ida

IOMMU_NO_PASID = 0
IOMMU_FIRST_GLOBAL_PASID = 1
IOMMU_PASID_INVALID = 0xFFFFFFFF
INVALID_IOASID = IOMMU_PASID_INVALID
MSR_IA32_PASID_VALID = 1 << 31
EMPTY: Map = Map()


@unique
class MmState(IntEnum):
    """mm lifecycle (kernel/fork.c): LIVE (mm_users > 0) → EXITED (``__mmput`` ran:
    exit_mmap and the mmu-notifier release; mm_count > 0) → freed (``__mmdrop``; the record
    leaves the table)."""

    LIVE = 0
    EXITED = 1


@unique
class DomainType(IntEnum):
    """``IOMMU_DOMAIN_*`` (include/linux/iommu.h)."""

    BLOCKED = 0
    IDENTITY = 1
    UNMANAGED = 2  # a paging domain owned by a driver or by user space (iommufd HWPT)
    DMA = 3  # the kernel DMA-API default domain
    SVA = 4
    NESTED = 5  # iommufd nested hwpt: user (guest) stage 1 over a NEST_PARENT paging stage 2


@unique
class HandleKind(IntEnum):
    """What put a handle in a ``pasid_array`` slot."""

    SVA = 0  # struct iommu_sva (iommu_sva_bind_device)
    IOMMUFD = 1  # struct iommufd_attach_handle
    DRIVER = 2  # a kernel driver's own handle (e.g. idxd kernel PASID)


@unique
class PasidEntryMode(IntEnum):
    """Hardware PASID-table entry of one (device, PASID) (VT-d scalable-mode PASID entry,
    SMMUv3 context descriptor).  Absent from the table = blocked (non-present)."""

    TRANSLATE = 0  # present, translating through the attached domain
    QUIESCED = 1  # mm exited: present but aborting, faults not reported (FPD / quiet CD)


@unique
class Work(IntEnum):
    """Kinds of deferred work: what the kernel runs later, in another context, instead of
    calling up into a higher layer.  A queued item is ``(Work, arg, ...)`` in
    :attr:`SystemState.work`; :mod:`pasidsim.work` runs them.

    - FPUT ``(file,)``: ``__fput`` as task work (fs/file_table.c ``fput()`` ->
      ``task_work_add(____fput)``): the driver's ``release``, then the file is freed.
    - SIGKILL ``(pid,)``: a fatal signal (SIGSEGV with the default disposition, from
      ``force_sig()`` in the #GP handler) delivered on return to user space: ``do_group_exit``.
    - PAGE_REQUEST ``(dev, pasid, addr, access, grpid, last)``: a PCIe page request the IOMMU
      received (PRI); its interrupt handler reports it (``iommu_report_device_fault``).
    """

    FPUT = 1
    SIGKILL = 2
    PAGE_REQUEST = 3


@unique
class IoasidState(IntEnum):
    """``enum ioasid_state`` of the unmerged IOASID-set design (§1.5)."""

    IDLE = 0
    ACTIVE = 1
    FREE_PENDING = 2


PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT

#: access / protection bits (IOMMU_READ, IOMMU_WRITE, and exec as ~IOMMU_NOEXEC)
PROT_READ = 1
PROT_WRITE = 2
PROT_EXEC = 4


class Vma(NamedTuple):
    """A mapping of an mm.  id; file: file id (0 = anonymous memory); dontcopy: VM_DONTCOPY;
    start: first virtual page number; npages: length in 4 KiB pages; prot: PROT_* bits;
    pgoff: the file offset in pages (a uacce queue's region).  A file VMA (device MMIO
    portal) holds a reference on its file and has no RAM pages."""

    id: int
    file: int
    dontcopy: bool
    start: int
    npages: int
    prot: int
    pgoff: int = 0


class Mm(NamedTuple):
    """``struct mm_struct`` with its ``iommu_mm_data``.

    mm_users: address-space users (tasks, mmget holders); mm_count: references to the struct
    itself (mmgrab), the mm_users>0 set holds one.  pasid: ``iommu_mm->pasid`` or
    IOMMU_PASID_INVALID.  sva_domains: ``iommu_mm->sva_domains`` (domain ids, in list order).
    vmas: :class:`Vma` records; a file-backed VMA holds its file.  pt: the CPU page table
    (populated on first touch or by an IOPF).
    lam: Linear Address Masking enabled; with ``force_tagged_sva`` unset the mm is not
    DMA-compatible (``arch_pgtable_dma_compat()`` false) and cannot be bound.
    lam_locked: ``MM_CONTEXT_LOCK_LAM``, sticky: set when a thread is cloned into the mm and
    after a successful LAM enable; never cleared while the mm lives.
    """

    mm_users: int = 1
    mm_count: int = 1
    state: int = MmState.LIVE
    pasid: int = IOMMU_PASID_INVALID
    sva_domains: tuple = ()
    vmas: tuple = ()
    lam: bool = False
    force_tagged_sva: bool = False  # MM_CONTEXT_FORCE_TAGGED_SVA: LAM and SVA may coexist
    lam_locked: bool = False  # MM_CONTEXT_LOCK_LAM: set by a CLONE_VM clone or a LAM enable
    pasid_users: int = 0  # E4-E5: ioasid references from iommu_sva_alloc_pasid()
    private_pasids: tuple = ()  # extra PASIDs bound with SVM_FLAG_PRIVATE_PASID (policy flag)
    pt: Map = EMPTY  # page table: virtual page -> (physical frame, PROT_* bits)
    next_vpage: int = 0x10  # where the next mapping goes (mmap_base), in pages


class Task(NamedTuple):
    """A thread.  pid: its thread group (process) id; mm: its mm id; pasid_activated:
    ``task_struct::pasid_activated``; msr: IA32_PASID value (0 or pasid | VALID)."""

    pid: int
    mm: int
    pasid_activated: bool = False
    msr: int = 0


class Proc(NamedTuple):
    """A process (thread group).  threads: live task ids; files: open file ids (its fd
    table, ``files_struct``, shared by its threads); mm: the mm id."""

    mm: int
    threads: tuple = ()
    files: tuple = ()


class File(NamedTuple):
    """``struct file`` of an open device node.  f_count: references (fd tables and VMAs);
    dev: device index; mm: the mm of the opener (``current->mm`` at open); handles: SVA bonds
    made by the driver for this file; drvdata: driver-private int; drv: the driver whose
    ``file_operations`` the file was opened with (``file->f_op``: kept after that driver is
    unbound from the device, so its release, mmap and ioctls still run), -1 for none."""

    dev: int
    f_count: int = 1
    mm: int = 0
    handles: tuple = ()
    drvdata: int = 0
    drv: int = -1


class Dev(NamedTuple):
    """Per-device runtime state.  driver: bound driver index or -1.  reset_depth:
    ``group_device::reset_depth`` (> 0: the device is fenced for a PCI reset, ``blocked``).
    stopped: PASIDs a driver's release has stopped the device's DMA on (drained) and not
    yet unbound: the device issues no new DMA or descriptor for them (between two steps only
    at ``lock`` granularity).  pasid_ctrl: the PCI PASID control register (a PF's; a VF has
    none of its own).  sva_param: the 2018 io_mm RFC's per-device ``iommu_sva_param``
    ``(features, min_pasid, max_pasid)`` set by ``iommu_sva_device_init`` (E0 designs)."""

    driver: int = -1
    reset_depth: int = 0
    stopped: tuple = ()
    pasid_ctrl: int = 0  # PCI PASID control register: PCI_PASID_CTRL_ENABLE (1) | features
    sva_param: tuple = ()  # E0: iommu_sva_param (features, min_pasid, max_pasid), () = none
    kernel_pasid: int = 0  # idxd: the system PASID of the kernel work queues (idxd->pasid)


class Group(NamedTuple):
    """``struct iommu_group``.  Domain fields are domain ids (0 = NULL).  owner: the owner
    cookie (0 = NULL).  pasid_array: sorted ``(pasid, domain, handle)`` triples; pasid 0 is the
    RID slot used by the *_group_handle APIs; handle 0 = a bare domain entry."""

    default_domain: int = 0
    blocking_domain: int = 0
    domain: int = 0
    owner_cnt: int = 0
    owner: int = 0
    pasid_array: tuple = ()
    recovery_cnt: int = 0  # devices of the group fenced for a PCI reset (E17)
    attach_cnt: int = 0  # seed 003 iommu_attach_device_shared() users of group.domain


class Domain(NamedTuple):
    """``struct iommu_domain``.  iommu: index of the unit whose ops allocated it.  mm: the
    bound mm (SVA).  users: SVA ``domain->users``.  pasid_compat: allocated with
    ``IOMMU_HWPT_ALLOC_PASID``.  parent: a NESTED domain's stage-2 (paging) domain; the
    guest's stage-1 tables are not modelled (taken as the identity), so a nested domain
    translates through its parent's IOVA table."""

    type: int
    iommu: int
    mm: int = 0
    users: int = 0
    pasid_compat: bool = True
    iova: Map = EMPTY  # UNMANAGED/DMA domains: IOVA page -> (physical frame, PROT_* bits)
    parent: int = 0


class Handle(NamedTuple):
    """``struct iommu_sva`` / ``iommu_attach_handle``.  users: outstanding binds for the
    (group, pasid) slot.  drvdata: driver-private data for (device, PASID), found again
    through ``iommu_attach_handle_get``."""

    kind: int
    domain: int
    dev: int
    group: int
    pasid: int
    users: int = 1
    drvdata: int = 0


class Ioasid(NamedTuple):
    """``struct ioasid_data`` (legacy allocator).  set: set id (0 = NULL set)."""

    set: int = 0
    private: int = 0
    refs: int = 1
    state: int = IoasidState.IDLE


class IoasidSet(NamedTuple):
    """``struct ioasid_set`` (§1.5).  type 0 = NULL, 1 = MM."""

    token: int
    quota: int
    type: int
    nr_ioasids: int = 0
    free_pending: bool = False


@unique
class IfdKind(IntEnum):
    """``enum iommufd_object_type`` (the kinds pasidsim models)."""

    IOAS = 1
    HWPT_PAGING = 2
    HWPT_NESTED = 3
    FAULT = 4
    VIOMMU = 5


IFD_AUTO_DOMAIN = 1  # IfdObj.flags: a hwpt iommufd allocated itself for an IOAS attach
IFD_NEST_PARENT = 2  # IfdObj.flags: IOMMU_HWPT_ALLOC_NEST_PARENT


class IfdFault(NamedTuple):
    """A page-request group delivered to an iommufd fault queue.  cookie: 0 until user space
    reads it (then the id its response must name); nfaults: its page requests (one
    ``iommu_hwpt_pgfault`` record each); handle: the attach handle (group, PASID) it came
    through."""

    cookie: int
    dev: int
    pasid: int
    grpid: int
    nfaults: int
    handle: int


class IfdObj(NamedTuple):
    """An iommufd object (``struct iommufd_object``) of context ``ictx``.

    users: ``obj->users``: 1 is the context's own reference (``IOMMU_DESTROY`` needs it to be
    the last: -EBUSY otherwise); every hwpt on an IOAS, every attached (device, PASID) of a
    hwpt, every nested hwpt or vIOMMU on a parent and every hwpt on a fault object adds one.
    parent: HWPT_PAGING: its IOAS; HWPT_NESTED: its parent HWPT_PAGING or vIOMMU; VIOMMU: its
    NEST_PARENT hwpt.  fault: a hwpt's fault object (``IOMMU_HWPT_FAULT_ID_VALID``).  flags:
    ``IFD_AUTO_DOMAIN``, ``IFD_NEST_PARENT``.  faults: a FAULT object's groups
    (:class:`IfdFault`), oldest first: unread ones (cookie 0) and read ones awaiting their
    response.  A hwpt's object id is its :class:`Domain` id."""

    kind: int
    ictx: int
    users: int = 1
    parent: int = 0
    fault: int = 0
    flags: int = 0
    faults: tuple = ()


@unique
class Granularity(IntEnum):
    """How much of a kernel call one step of the model runs."""

    CALL = 0  # a whole call (and the deferred work it queued) per step
    LOCK = 1  # up to the call's next preemption point (pasidsim.locking)


class Static:
    """The configuration and policy of a state: compared by value, hashed as a constant so
    that they never perturb fingerprints."""

    __slots__ = ("config", "policy", "granularity")

    def __init__(self, config: Config, policy, granularity: int = Granularity.CALL) -> None:
        self.config = config
        self.policy = policy
        self.granularity = granularity

    def __hash__(self) -> int:
        return 0x5A51D

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Static) and (self is other or (
            self.config == other.config and self.policy == other.policy
            and self.granularity == other.granularity)))

    def __repr__(self) -> str:
        return f"Static(policy={self.policy.name!r})"


class KFrame(NamedTuple):
    """One activation of a :class:`~pasidsim.locking.KFunc`: its ``index`` (its key in
    ``locking.KFUNCS``, the same in every process), the next instruction, its locals ``(ret, *args, ...)``."""

    fn: int
    pc: int
    loc: tuple


class KThread(NamedTuple):
    """A kernel path in progress on behalf of one context (a task's system call or
    exception, a kernel thread), between two of its preemption points.

    kind: :class:`~pasidsim.locking.CtxKind`; op, args: the call (opcode, arguments), op -1
    for none; frames: :class:`KFrame` stack, innermost last; wait: the lock key it sleeps
    on (0: runnable); held: lock keys it holds (as in :attr:`SystemState.locks`); ret: the
    call's return once its frames are done; pending: task work it queued (``(Work, args...)``),
    run before the call returns to user space; fail: injected-failure ordinal not yet
    reached (:mod:`pasidsim.fault`)."""

    kind: int
    op: int
    args: tuple
    frames: tuple
    wait: int = 0
    held: tuple = ()
    ret: int = 0
    pending: tuple = ()
    fail: int = 0


class SystemState(NamedTuple):
    """The machine.  See the module docstring for conventions.

    Tables: ``mms``, ``tasks``, ``procs``, ``files``, ``domains``, ``handles``, ``ioasids``,
    ``ioasid_sets``, ``fences`` (id -> signalled), ``amdgpu_pending`` (pasid -> fence id),
    ``pasid_refs`` (pasid -> device references that may still use it), ``pending_free``
    (pasids freed by their owner but still referenced), ``pasid_table``
    ((device, pasid) -> (domain, PasidEntryMode)).  Tuples: ``devs`` and ``groups`` indexed like
    the Config.  ``warnings``: ``(Warn code, arg, arg)`` triples, oldest first.
    """

    static: Static
    ida: Ida
    amdgpu_ida: Ida
    mms: Map
    tasks: Map
    procs: Map
    files: Map
    devs: tuple
    groups: tuple
    domains: Map
    handles: Map
    pasid_table: Map
    pasid_refs: Map
    pending_free: Map
    ioasids: Map
    ioasid_sets: Map
    ioasid_capacity: int
    allocators: tuple  # registered custom ioasid allocators: (ops token, fns token)
    fences: Map
    amdgpu_pending: Map
    work: tuple  # deferred work, oldest first: (Work kind, args...) (task work, signals, IRQs)
    frames: Ida  # physical frames of user memory in use (lowest free reused first)
    iotlb: Map  # (iommu, domain, pasid, vpage) -> (pfn, prot, seq)
    atc: Map  # (dev, pasid, vpage) -> (pfn, prot, seq): device ATC (ATS-capable devices)
    cache_seq: int  # insertion counter for FIFO eviction
    faults: tuple  # the last fault records: (dev, pasid, vpage, FaultReason)
    iopf: Map  # dev -> IopfQueue
    responses: tuple  # the last page responses: (dev, pasid, grpid, IopfResponse)
    inflight: Map  # descriptor id -> Desc
    breaches: tuple  # isolation breaches seen by the hardware: (Breach, dev, pasid, a, b)
    ih_ring: tuple  # GPU interrupt-handler ring: pending (dev, pasid, file of the raising VM)
    warnings: tuple
    next_id: int
    locks: Map = EMPTY  # lock key -> holding context (pasidsim.locking), between preemption points
    kthreads: Map = EMPTY  # context -> KThread: kernel paths in progress (lock granularity)
    lock_usage: Map = EMPTY  # spinlock key -> lockdep usage bits: 1 in IRQ, 2 with IRQs on
    ifd: Map = EMPTY  # iommufd objects: id -> IfdObj (pasidsim.iommufd)

    @property
    def config(self) -> Config:
        return self.static.config

    @property
    def policy(self):
        return self.static.policy

    def fingerprint(self) -> int:
        """64-bit fingerprint, stable across processes."""
        return hash(self) & 0xFFFF_FFFF_FFFF_FFFF

    def fingerprint_nowarn(self) -> int:
        """Fingerprint ignoring the warning log and lockdep's lock-usage record (kernel
        diagnostics, not state a failed call must restore: for failure-atomicity checks)."""
        return hash(self._replace(warnings=(), lock_usage=EMPTY)) & 0xFFFF_FFFF_FFFF_FFFF


def fast_replace(cls):
    """Install a faster ``_replace`` on NamedTuple class ``cls`` (returned, so it works as a
    decorator).  ``collections.namedtuple``'s version rebuilds the tuple through ``_make`` and
    a keyword dict pop per field; kernel calls copy records and the state many times per
    step.  Same contract: a copy with the named fields replaced; ValueError for a name that
    is not a field."""
    index = {name: i for i, name in enumerate(cls._fields)}
    new = tuple.__new__

    def _replace(self, **changes):
        values = list(self)
        try:
            for name, value in changes.items():
                values[index[name]] = value
        except KeyError as e:
            raise ValueError(f"{cls.__name__} has no field {e.args[0]!r}") from None
        return new(cls, values)

    _replace.__doc__ = f"A copy of this {cls.__name__} with the given fields replaced."
    cls._replace = _replace
    return cls


def _rebuild(cls, values):
    """Unpickle a record: ``tuple.__new__`` directly (NamedTuple's ``__new__`` is Python)."""
    return tuple.__new__(cls, values)


def fast_pickle(cls):
    """Make NamedTuple class ``cls`` pickle as ``(_rebuild, (cls, values))`` (returned, so it
    works as a decorator).  The default goes through a Python ``__getnewargs__`` on dump and
    the class's Python ``__new__`` on load, per record; the parallel checker ships states
    between processes by the thousand."""
    def __reduce__(self):
        return _rebuild, (cls, tuple(self))
    cls.__reduce__ = __reduce__
    return cls


for _cls in (Vma, Mm, Task, Proc, File, Dev, Group, Domain, Handle, Ioasid, IoasidSet,
             KFrame, KThread, SystemState):
    fast_pickle(fast_replace(_cls))


def _table_hash(cls, field: str):
    """``__hash__`` for record class ``cls`` holding a table in ``field`` (``Mm.pt``,
    ``Domain.iova``): the table as the frozenset of its items, the other fields as they are.
    ``immutables.Map.__hash__`` combines keys and values separately, so two maps that differ
    only by values swapped between keys hash alike (``{11: True, 15: False}`` vs
    ``{11: False, 15: True}``); the model checker would then take different states for
    visited.  Most records hold an empty table: it hashes as 0, without a frozenset."""
    i = cls._fields.index(field)

    def __hash__(self) -> int:
        m = self[i]
        return hash((self[:i], frozenset(m.items()) if m else 0, self[i + 1:]))

    return __hash__


Mm.__hash__ = _table_hash(Mm, "pt")  # type: ignore[method-assign,assignment]
Domain.__hash__ = _table_hash(Domain, "iova")  # type: ignore[method-assign,assignment]
for _cls, _field in ((Mm, "pt"), (Domain, "iova")):  # their only tables
    assert [f for f, v in _cls._field_defaults.items() if type(v) is Map] == [_field]

_MAP_FIELDS: tuple = ()  # indices of the SystemState fields that hold Maps (set below)


def _strong_hash(self: SystemState) -> int:
    """``hash(state)``: the 64-bit fingerprint, structural and the same in every process.

    Each table is hashed as the tuple of its items in iteration order (not by
    ``Map.__hash__``, whose key/value separability is explained in :func:`_record_hash`).  A
    HAMT's iteration order is a function of its keys' hashes, so equal tables give equal
    tuples, except for keys whose 32-bit hashes collide, which are kept in insertion order:
    two equal states may then fingerprint differently -- a duplicate exploration, never a
    merge of different states."""
    vals = list(self)
    for i in _MAP_FIELDS:
        m = vals[i]
        if m:
            vals[i] = tuple(m.items())
    return hash(tuple(vals))


SystemState.__hash__ = _strong_hash  # type: ignore[method-assign,assignment]
_MAP_FIELDS = tuple(i for i, name in enumerate(SystemState._fields)
                    if getattr(SystemState.__annotations__.get(name), "__forward_arg__",
                               SystemState.__annotations__.get(name)) in (Map, "Map"))


def initial_state(config: Config, policy, granularity: int = Granularity.CALL) -> SystemState:
    """The machine at boot: every group with its default domain (unless deferred), devices
    with their configured drivers not yet probed (drivers are bound by actions), nothing else.

    Domain ids 1..n are the groups' default domains.
    """
    domains = {}
    groups = []
    next_id = 1
    for gi, g in enumerate(config.groups):
        if g.deferred:
            groups.append(Group())
            continue
        did = next_id
        next_id += 1
        domains[did] = Domain(DomainType.DMA, g.iommu, pasid_compat=True)
        groups.append(Group(default_domain=did, domain=did))
    return SystemState(
        static=Static(config, policy, granularity), ida=Ida(), amdgpu_ida=Ida(), mms=EMPTY, tasks=EMPTY,
        procs=EMPTY, files=EMPTY, devs=tuple(Dev() for _ in config.devices),
        groups=tuple(groups), domains=Map(domains), handles=EMPTY, pasid_table=EMPTY,
        pasid_refs=EMPTY, pending_free=EMPTY, ioasids=EMPTY, ioasid_sets=EMPTY,
        ioasid_capacity=0x100000, allocators=(), fences=EMPTY, amdgpu_pending=EMPTY,
        work=(), frames=Ida(), iotlb=EMPTY, atc=EMPTY, cache_seq=0, faults=(),
        iopf=EMPTY, responses=(), inflight=EMPTY, breaches=(), ih_ring=(), warnings=(),
        next_id=next_id)


def warn(s: SystemState, code, a: int = 0, b: int = 0) -> SystemState:
    """Record a kernel ``WARN_ON`` (a :class:`~pasidsim.errors.Warn` code and two ints) in the
    state: the only change a WARN makes."""
    return s._replace(warnings=s.warnings + ((int(code), a, b),))


def queue_work(s: SystemState, kind: Work, *args: int) -> SystemState:
    """Queue deferred work ``(kind, *args)`` (run later by :func:`pasidsim.work.run_work`)."""
    return s._replace(work=s.work + ((int(kind),) + args,))


def new_id(s: SystemState) -> tuple[SystemState, int]:
    """Draw a fresh object id."""
    return s._replace(next_id=s.next_id + 1), s.next_id
