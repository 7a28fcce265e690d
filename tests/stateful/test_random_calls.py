"""Hypothesis state machines over the facade's operations.

``KernelCalls`` drives arbitrary calls (including misuse: bogus ids, frees of unallocated
PASIDs, binds by devices with no driver) and checks after every step:
- every kernel-scope invariant and every transition invariant;
- failure atomicity: a call that returns ``-errno`` leaves the state's fingerprint unchanged
  (warnings aside), except the documented side effects (a failed bind keeps the mm's PASID; a
  genuine #GP kills the process; ``ioasid_set_free`` marks a busy set free-pending);
- a ModelUsageError (misuse of the library) leaves the state untouched.

``DriverWorkload`` drives only what conforming actors do (drivers bind through the bus, uacce
opens bind, VFIO claims and releases what it claimed) and checks the contract invariants too.
"""

from __future__ import annotations

import hypothesis.strategies as st
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from pasidsim.config import Config, DeviceConfig, DriverConfig, IommuUnit
from pasidsim.errors import ModelUsageError
from pasidsim.invariants import check_state, check_transition
from pasidsim.policy import CURRENT, Allocator
from pasidsim.state import IOMMU_PASID_INVALID
from pasidsim.step import OP_BY_NAME, Action, step
from pasidsim.state import initial_state

DEVICES = [
    DeviceConfig("g0a", iommu="i0", group="G0", pasid_bits=20, ats=True, pri=True),
    DeviceConfig("g0b", iommu="i0", group="G0", pasid_bits=3),
    DeviceConfig("g0c", iommu="i0", group="G0", pasid_bits=0),
    DeviceConfig("acc", iommu="i0", pasid_bits=20, ats=True, pri=True, atc_entries=2),
    DeviceConfig("arm", iommu="i1", pasid_bits=4),
    DeviceConfig("nic", iommu="i1", pasid_bits=0),
    DeviceConfig("rmrr", iommu="i0", require_direct=True),
    DeviceConfig("bare", iommu=None, pasid_bits=20),
]
IOMMUS = [IommuUnit("i0", ops="intel-iommu", iotlb_entries=3), IommuUnit("i1", ops="arm-smmu-v3", max_pasids=8)]
DRIVERS = [DriverConfig("e1000e"), DriverConfig("vfio-pci", driver_managed_dma=True),
           DriverConfig("uacce", kind="uacce")]
CONFIG = Config.build(iommus=IOMMUS, devices=DEVICES, drivers=DRIVERS)

KERNEL_OPS = [
    "iommu_alloc_global_pasid", "iommu_free_global_pasid", "ioasid_alloc", "ioasid_free",
    "ioasid_get", "ioasid_put", "ioasid_find", "ioasid_set_alloc", "ioasid_set_free",
    "iommu_domain_alloc_paging", "iommu_attach_device_pasid", "iommu_detach_device_pasid",
    "iommu_device_use_default_domain", "iommu_device_unuse_default_domain",
    "iommu_group_claim_dma_owner", "iommu_device_claim_dma_owner",
    "iommu_group_release_dma_owner", "iommu_device_release_dma_owner", "iommu_attach_group",
    "iommu_detach_group", "iommu_attach_device", "device_driver_attach",
    "device_release_driver", "iommu_sva_bind_device", "iommu_sva_unbind_device",
    "process_create", "clone_thread", "fork", "task_exit", "dev_open", "close", "mmap",
    "munmap", "enqcmd", "exc_general_protection", "amdgpu_pasid_alloc", "amdgpu_pasid_free",
    # hardware and memory
    "dma", "wq_submit", "dma_complete", "wq_drain", "iommu_report_device_fault", "iopf_handle",
    "iopf_queue_flush_dev", "iopf_queue_remove_device", "iommu_map", "iommu_unmap",
    "mmap_anon", "touch", "mprotect", "munmap_range",
]


def _pool(s, name):
    """Candidate values for an argument, from the live state plus a bogus one."""
    if name == "dev":
        return list(range(len(CONFIG.devices)))
    if name == "drv":
        return list(range(len(CONFIG.drivers)))
    if name == "group":
        return list(range(len(CONFIG.groups)))
    if name in ("tid",):
        return sorted(s.tasks.keys())[:4] + [99999]
    if name == "mm":
        return sorted(s.mms.keys())[:4] + [99999]
    if name == "handle":
        return sorted(s.handles.keys())[:4] + [0, 99999]
    if name == "domain":
        return sorted(s.domains.keys())[-4:] + [99999]
    if name in ("fd",):
        return sorted(s.files.keys())[:4] + [99999]
    if name == "vma":
        return [v[0] for m in s.mms.values() for v in m.vmas][:4] + [99999]
    if name == "addr":
        return [v.start << 12 for m in s.mms.values() for v in m.vmas][:4] + [0, 0x10000]
    if name in ("access", "prot"):
        return [1, 2, 3]
    if name == "desc":
        return sorted(s.inflight.keys())[:4] + [99999]
    if name in ("iova", "paddr"):
        return [0x10000, 0x11000, 0x80000]
    if name == "size":
        return [4096, 8192, 100]
    if name == "npages":
        return [1, 2, 0]
    if name in ("pasid", "ident"):
        return s.ida.ids()[:4] + [0, 1, 5, 9, IOMMU_PASID_INVALID]
    if name in ("owner",):
        return [0, 0xA, 0xB]
    if name in ("set",):
        return [0] + sorted(s.ioasid_sets.keys())[:2]
    if name in ("min",):
        return [1, 4]
    if name in ("max",):
        return [3, 6, 100]
    if name in ("quota",):
        return [0, 1, 2]
    if name == "type":
        return [0, 1, -1, 4]
    if name == "bits":
        return [0, 2, 4]
    if name == "token":
        return [0, 1]
    return [0, 1]


def _check_atomic(before, action, ret, after):
    op = OP_BY_NAME[action.name]
    if ret >= 0 or action.name in ("iommu_alloc_global_pasid", "ioasid_alloc"):
        return
    if op.atomic:
        assert after.fingerprint_nowarn() == before.fingerprint_nowarn(), action
        return
    if action.name == "iommu_sva_bind_device":
        restored = after._replace(mms=before.mms, ida=before.ida, next_id=before.next_id)
        assert restored.fingerprint_nowarn() == before.fingerprint_nowarn(), action


class KernelCalls(RuleBasedStateMachine):
    policy = CURRENT

    def __init__(self):
        super().__init__()
        self.state = initial_state(CONFIG, self.policy)
        self.last = []
        self.mine: set[int] = set()  # PASIDs this caller allocated with the global API
        self.attached: set[tuple] = set()  # (domain, dev, pasid) this caller attached
        self.domains: list[int] = []  # paging domains this caller allocated

    @rule(data=st.data(), name=st.sampled_from(KERNEL_OPS))
    def call(self, data, name):
        op = OP_BY_NAME[name]
        kwargs = {p: data.draw(st.sampled_from(_pool(self.state, p)), label=p)
                  for p in op.params}
        if "domain" in kwargs and name != "iommu_detach_device_pasid":
            # SVA, default and blocking domains belong to the core: a caller passes its own
            live = [d for d in self.domains if d in self.state.domains]
            kwargs["domain"] = data.draw(st.sampled_from(live + [99999]), label="own domain")
        if name == "iommu_free_global_pasid":
            # a caller frees only what it allocated (or bogus values, which WARN); freeing
            # another owner's PASID is a double free the kernel cannot detect either
            kwargs["pasid"] = data.draw(st.sampled_from(
                sorted(self.mine) + [IOMMU_PASID_INVALID, 4321]), label="pasid")
        if name == "iommu_detach_device_pasid":
            # a caller detaches only what it attached (the kernel does not check)
            if not self.attached:
                return
            kwargs["domain"], kwargs["dev"], kwargs["pasid"] = data.draw(
                st.sampled_from(sorted(self.attached)), label="attachment")
        action = Action.of(name, **kwargs)
        before = self.state
        try:
            after, ret = step(before, action)
        except ModelUsageError:
            return  # misuse: the facade raises and keeps its state
        self.last = check_transition(before, action, ret, after, scope="kernel")
        assert not self.last, (action, ret, self.last)
        _check_atomic(before, action, ret, after)
        if name == "iommu_alloc_global_pasid" and ret != IOMMU_PASID_INVALID:
            self.mine.add(ret)
        if name == "iommu_free_global_pasid":
            self.mine.discard(kwargs["pasid"])
        if name == "iommu_domain_alloc_paging" and ret > 0:
            self.domains.append(ret)
        if name == "iommu_attach_device_pasid" and ret == 0:
            self.attached.add((kwargs["domain"], kwargs["dev"], kwargs["pasid"]))
        if name == "iommu_detach_device_pasid":
            g = CONFIG.device_group[kwargs["dev"]]
            self.attached = {a for a in self.attached
                             if not (CONFIG.device_group[a[1]] == g and a[2] == kwargs["pasid"])}
        self.state = after

    @invariant()
    def kernel_invariants(self):
        bad = check_state(self.state, scope="kernel")
        assert not bad, bad


class KernelCallsPendingFree(KernelCalls):
    policy = CURRENT.but(name="pending-free", allocator=Allocator.PENDING_FREE)


class KernelCallsCyclic(KernelCalls):
    policy = CURRENT.but(name="cyclic", allocator=Allocator.CYCLIC)


class DriverWorkload(RuleBasedStateMachine):
    """Only conforming actors; every invariant but the WARN log must hold."""

    def __init__(self):
        super().__init__()
        self.state = initial_state(CONFIG, CURRENT)
        self.claimed: dict[int, int] = {}

    def _do(self, name, **kw):
        before = self.state
        action = Action.of(name, **kw)
        after, ret = step(before, action)
        assert not check_transition(before, action, ret, after)
        self.state = after
        return ret

    @rule()
    def spawn(self):
        if len(self.state.procs) < 3:
            self._do("process_create")

    @rule(data=st.data())
    def thread_event(self, data):
        if not self.state.tasks:
            return
        tid = data.draw(st.sampled_from(sorted(self.state.tasks.keys())))
        ev = data.draw(st.sampled_from(["clone_thread", "fork", "task_exit", "open",
                                        "close", "mmap", "munmap", "enqcmd"]))
        pid = self.state.tasks[tid].pid
        files = self.state.procs[pid].files
        if ev in ("clone_thread", "fork"):
            if len(self.state.tasks) < 5:
                self._do(ev, tid=tid)
        elif ev == "task_exit":
            self._do(ev, tid=tid)
        elif ev == "open":
            dev = data.draw(st.sampled_from([0, 1, 3, 4]))
            self._do("dev_open", tid=tid, dev=dev)
        elif ev in ("close", "mmap") and files:
            self._do(ev, tid=tid, fd=data.draw(st.sampled_from(files)))
        elif ev == "munmap":
            vmas = self.state.mms[self.state.tasks[tid].mm].vmas
            if vmas:
                self._do("munmap", tid=tid, vma=data.draw(st.sampled_from(vmas))[0])
        elif ev == "enqcmd":
            if self.state.mms[self.state.tasks[tid].mm].pasid != IOMMU_PASID_INVALID:
                self._do("enqcmd", tid=tid, dev=3)

    @rule(data=st.data())
    def hardware_event(self, data):
        from pasidsim.ops import enabled_events
        evs = enabled_events(self.state)
        if evs:
            a = data.draw(st.sampled_from(evs))
            before = self.state
            self.state, ret = step(before, a)
            assert not check_transition(before, a, ret, self.state)

    @rule(data=st.data())
    def memory_and_dma(self, data):
        if not self.state.tasks:
            return
        tid = data.draw(st.sampled_from(sorted(self.state.tasks.keys())))
        mm = self.state.mms[self.state.tasks[tid].mm]
        kind = data.draw(st.sampled_from(["mmap", "touch", "mprotect", "munmap", "submit", "dma"]))
        anon = [v for v in mm.vmas if not v.file]
        if kind == "mmap":
            self._do("mmap_anon", tid=tid, npages=2, prot=3)
        elif anon and kind in ("touch", "mprotect", "munmap"):
            v = data.draw(st.sampled_from(anon))
            if kind == "touch":
                self._do("touch", tid=tid, addr=v.start << 12, access=data.draw(st.sampled_from([1, 2])))
            elif kind == "mprotect":
                self._do("mprotect", tid=tid, addr=v.start << 12, prot=data.draw(st.sampled_from([1, 3])))
            else:
                self._do("munmap_range", tid=tid, addr=v.start << 12)
        elif kind in ("submit", "dma") and mm.pasid != IOMMU_PASID_INVALID and anon:
            dev = data.draw(st.sampled_from([0, 1, 3, 4]))
            if (dev, mm.pasid) in self.state.pasid_table:
                v = data.draw(st.sampled_from(anon))
                op = "wq_submit" if kind == "submit" else "dma"
                self._do(op, dev=dev, pasid=mm.pasid, addr=v.start << 12, access=2)

    @rule(dev=st.integers(0, len(DEVICES) - 1), drv=st.integers(0, len(DRIVERS) - 1))
    def bind_driver(self, dev, drv):
        self._do("device_driver_attach", dev=dev, drv=drv)

    @rule(dev=st.integers(0, len(DEVICES) - 1))
    def unbind_driver(self, dev):
        g = CONFIG.device_group[dev]
        if g >= 0 and self.state.groups[g].pasid_array:
            return  # conforming drivers unbind their PASIDs first (remove does)
        self._do("device_release_driver", dev=dev)

    @rule(group=st.integers(0, len(CONFIG.groups) - 1))
    def vfio_claim(self, group):
        if group in self.claimed:
            return
        if self._do("iommu_group_claim_dma_owner", group=group, owner=0xF00 + group) == 0:
            self.claimed[group] = 0xF00 + group

    @rule(data=st.data())
    def vfio_release(self, data):
        if self.claimed:
            g = data.draw(st.sampled_from(sorted(self.claimed)))
            del self.claimed[g]
            self._do("iommu_group_release_dma_owner", group=g)

    @invariant()
    def all_invariants(self):
        bad = [b for b in check_state(self.state) if b[0] != "W"]
        assert not bad, bad


_settings = settings(max_examples=60, stateful_step_count=40, deadline=None,
                     suppress_health_check=[HealthCheck.too_slow])
TestKernelCalls = KernelCalls.TestCase
TestKernelCalls.settings = _settings
TestKernelCallsPendingFree = KernelCallsPendingFree.TestCase
TestKernelCallsPendingFree.settings = _settings
TestKernelCallsCyclic = KernelCallsCyclic.TestCase
TestKernelCallsCyclic.settings = _settings
TestDriverWorkload = DriverWorkload.TestCase
TestDriverWorkload.settings = _settings
