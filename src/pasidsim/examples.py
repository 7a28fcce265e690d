"""Built-in worked examples (used by ``pasidsim demo`` and the README)."""

from __future__ import annotations

from rich.text import Text

from .config import Config, DeviceConfig, DriverConfig, IommuUnit
from .invariants import check_state, check_transition
from .policy import CURRENT, Policy
from .report.text import state_tables, trace_table
from .state import IOMMU_PASID_INVALID
from .step import Action
from .system import System


def demo_config() -> Config:
    """A DSA-like accelerator (20-bit PASID, uacce-style driver) behind one VT-d unit."""
    return Config.build(iommus=[IommuUnit("dmar0")],
                        devices=[DeviceConfig("dsa0", iommu="dmar0", pasid_bits=20, pri=True,
                                              ats=True)],
                        drivers=[DriverConfig("uacce", kind="uacce")])


def lifecycle_demo(policy: Policy = CURRENT) -> list:
    """Process A opens the accelerator (bind → PASID), maps its queue, forks B (B inherits the
    fd), runs ENQCMD, and exits; then B exits.  Returns rich renderables: the trace with the
    PASID's fate at each step and the invariants violated, and the final state."""
    sys = System(demo_config(), policy)
    rows = []

    def do(name, note="", **kw):
        before = sys.state
        ret = sys.apply(_action(sys, name, **kw))
        bad = check_state(sys.state, "kernel") + check_transition(before, None, ret, sys.state,
                                                                  "kernel")
        text = note
        if bad:
            text += (" " if text else "") + "VIOLATES " + "; ".join(f"{n}: {m}" for n, m in bad)
        rows.append((sys.trace[-1][0], ret, text))
        return ret

    do("device_driver_attach", "driver probe: owner_cnt 1", dev=0, drv=0)
    a = do("process_create", "process A")
    fd = do("dev_open", "open() binds A's mm: PASID allocated", tid=a, dev=0)
    h = sys.state.files[fd].handles[0] if fd > 0 else 0
    pasid = sys.state.mms[sys.mm_of(a)].pasid
    do("mmap", "queue mapped: the VMA holds the file", tid=a, fd=fd)
    b = do("fork", "child B inherits the fd (fresh mm, no PASID)", tid=a)
    do("enqcmd", f"A's ENQCMD: #GP fixup loads IA32_PASID = {pasid}", tid=a, dev=0)
    do("task_exit", "A exits: exit_mmap, PASID entry quiesced", tid=a)
    do("task_exit", "B exits: last fput → release → unbind → __mmdrop", tid=b)
    out = [trace_table(sys.state, rows, title=f"design: {policy.name}  (bond handle {h})")]
    fate = "still allocated" if pasid in sys.state.ida else "freed"
    out.append(Text(f"PASID {pasid} is {fate} at the end; mms left: {len(sys.state.mms)}"
                    if pasid != IOMMU_PASID_INVALID else "no PASID was allocated"))
    out.extend(state_tables(sys.state))
    return out


def _action(sys: System, name: str, **kw):
    return Action.of(name, **kw)
