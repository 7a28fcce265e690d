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


#: The demo's steps as a scenario (same machine, same calls): ``pasidsim run`` of this text
#: and :func:`lifecycle_demo` must agree on every violation (tests/cli/test_demo.py).
DEMO_SCENARIO = """
name: lifecycle-demo
design: current
machine:
  iommus: [{name: dmar0, ops: intel-iommu}]
  devices: [{name: dsa0, iommu: dmar0, pasid_bits: 20, ats: true, pri: true, driver: uacce}]
  drivers: [{name: uacce, kind: uacce}]
actors:
  - name: A
    program:
      - open: {dev: dsa0, as: q}
      - mmap: {fd: $q}
      - fork:
          as: B
          program:
            - exit: {}
      - enqcmd: {dev: dsa0}
      - exit: {}
order: [A, A, A, A, A, B]
"""


def demo_steps(policy: Policy = CURRENT) -> tuple[System, list, dict]:
    """Run the demo's calls on a :class:`System`.  Returns it, the rows ``(call, ret,
    violations)`` -- ``violations`` the ``(invariant, message)`` pairs that step broke: state
    invariants after it and transition invariants of the step judged with its action, as the
    checker and ``pasidsim run`` judge them -- and ``{"pasid", "handle"}`` of A's open."""
    sys = System(demo_config(), policy)
    rows = []

    def do(name, **kw):
        before = sys.state
        action = _action(sys, name, **kw)
        ret = sys.apply(action)
        bad = check_state(sys.state, "kernel") + check_transition(before, action, ret,
                                                                  sys.state, "kernel")
        rows.append((sys.trace[-1][0], ret, bad))
        return ret

    do("device_driver_attach", dev=0, drv=0)
    a = do("process_create")
    fd = do("dev_open", tid=a, dev=0)
    info = {"pasid": sys.state.mms[sys.mm_of(a)].pasid,
            "handle": sys.state.files[fd].handles[0] if fd > 0 else 0}
    do("mmap", tid=a, fd=fd)
    b = do("fork", tid=a)
    do("enqcmd", tid=a, dev=0)
    do("task_exit", tid=a)
    do("task_exit", tid=b)
    return sys, rows, info


_NOTES = ("driver probe: owner_cnt 1", "process A", "open() binds A's mm: PASID allocated",
          "queue mapped: the VMA holds the file", "child B inherits the fd (fresh mm, no PASID)",
          "A's ENQCMD: #GP fixup loads IA32_PASID = {pasid}",
          "A exits: exit_mmap, PASID entry quiesced",
          "B exits: last fput → release → unbind → __mmdrop")


def lifecycle_demo(policy: Policy = CURRENT) -> list:
    """Process A opens the accelerator (bind → PASID), maps its queue, forks B (B inherits the
    fd), runs ENQCMD, and exits; then B exits.  Returns rich renderables: the trace with the
    PASID's fate at each step and the invariants violated, and the final state."""
    sys, steps, info = demo_steps(policy)
    pasid = info["pasid"]
    rows = []
    for (call, ret, bad), note in zip(steps, _NOTES):
        text = note.format(pasid=pasid)
        if bad:
            text += " VIOLATES " + "; ".join(f"{n}: {m}" for n, m in bad)
        rows.append((call, ret, text))
    out = [trace_table(sys.state, rows,
                       title=f"design: {policy.name}  (bond handle {info['handle']})")]
    fate = "still allocated" if pasid in sys.state.ida else "freed"
    out.append(Text(f"PASID {pasid} is {fate} at the end; mms left: {len(sys.state.mms)}"
                    if pasid != IOMMU_PASID_INVALID else "no PASID was allocated"))
    out.extend(state_tables(sys.state))
    return out


def _action(sys: System, name: str, **kw):
    return Action.of(name, **kw)
