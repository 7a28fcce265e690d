"""Shared test helpers for driving the library like a kernel caller."""

from __future__ import annotations

from pasidsim.invariants import check_state, check_transition
from pasidsim.step import Action
from pasidsim.system import System


def do(sys: System, name: str, invariants: bool = True, **kw) -> int:
    """Apply operation ``name`` to ``sys`` without raising (a device may be given by name).

    A failed call must leave the state exactly as it was (WARNs aside); with ``invariants``
    the kernel-scope invariants must hold after it.  Returns the call's return value."""
    if isinstance(kw.get("dev"), str):
        kw["dev"] = sys.config.device_index(kw["dev"])
    before = sys.state
    action = Action.of(name, **kw)
    ret = sys.apply(action)
    if ret < 0:
        assert sys.state.fingerprint_nowarn() == before.fingerprint_nowarn(), f"{name} not atomic"
    if invariants:
        bad = check_state(sys.state, "kernel") + check_transition(before, action, ret, sys.state,
                                                                  "kernel")
        assert not bad, bad
    return ret
