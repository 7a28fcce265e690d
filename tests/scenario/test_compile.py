"""The compiled transition system: initial / enabled / apply / done / quiescent, RunState
hashing, bindings, blocking, expectations as data, order, overrides and machines."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from pasidsim.errors import EFAULT
from pasidsim.scenario import (UNBOUND, RunState, ScenarioError, StepRef, compile_scenario,
                               load_text, run_scenario)


def compiled(text: str, **kw):
    return compile_scenario(load_text(text, "t.yaml"), **kw)


FORK = """
name: fork
probe_drivers: true
actors:
  - name: A
    program:
      - open: {dev: dsa0, as: q, expect: ok}
      - mmap: {fd: $q}
      - fork: {as: B, program: [{enqcmd: {dev: dsa0, expect: -EFAULT}}, {exit: {}}]}
      - exit: {}
  - name: admin
    kernel: true
    program:
      - task_exit: {tid: $B}
"""


def explore(c, rs=None, seen=None):
    """All reachable RunStates (small scenarios only)."""
    rs = c.initial() if rs is None else rs
    seen = set() if seen is None else seen
    if rs in seen:
        return seen
    seen.add(rs)
    for ref in c.enabled(rs):
        explore(c, c.apply(rs, ref)[0], seen)
    return seen


def test_runstate_is_a_hashable_value_of_ints():
    c = compiled(FORK)
    rs = c.initial()
    assert isinstance(rs, RunState) and hash(rs) == hash(c.initial()) and rs == c.initial()
    assert all(type(x) is int for x in rs.pcs + rs.tids + rs.binds)
    assert set(rs.binds) == {UNBOUND}
    assert c.names[:2] == ("A", "B")  # process actors' names are bindings (their tids)


def test_setup_runs_alone_first():
    c = compiled(FORK)
    rs = c.initial()
    steps = 0
    while c.enabled(rs)[0].actor == 0:
        assert c.enabled(rs) == [StepRef(0)]
        rs, ev = c.apply(rs, StepRef(0))
        assert ev.ok
        steps += 1
    assert steps == 7 + 1  # 7 boot probes of the default machine + start of process A
    assert [r.actor for r in c.enabled(rs)] == [1]  # admin waits for $B, B not started


def test_waiting_for_a_binding_and_blocking_after_kill():
    c = compiled(FORK)
    rs = c.initial()
    while c.enabled(rs) and c.enabled(rs)[0].actor in (0, 1):
        rs, ev = c.apply(rs, c.enabled(rs)[0])
        if c.actors[ev.actor].name == "A" and ev.action.name == "fork":
            break
    names = {c.actors[r.actor].name for r in c.enabled(rs)}
    assert names == {"A", "B", "admin"}  # $B is bound now
    b = next(r for r in c.enabled(rs) if c.actors[r.actor].name == "B")
    rs, ev = c.apply(rs, b)
    assert ev.ret == -EFAULT and ev.ok  # SIGSEGV killed B
    assert "B" not in {c.actors[r.actor].name for r in c.enabled(rs)}
    assert "exited" in c.status(rs, b.actor)
    admin = next(r for r in c.enabled(rs) if c.actors[r.actor].name == "admin")
    rs, ev = c.apply(rs, admin)  # task_exit of a task that is gone: a usage error, recorded
    assert not ev.ok and "unknown or exited task" in ev.error
    assert not c.done(rs) and not c.quiescent(rs)


def test_every_interleaving_reaches_quiescence_without_raising():
    c = compiled(FORK)
    states = explore(c)
    quiet = [rs for rs in states if c.quiescent(rs)]
    assert quiet and all(not c.enabled(rs) for rs in quiet)
    assert all(rs.sys.ida.allocated == 0 for rs in quiet)


def test_failed_expectation_is_recorded_not_raised():
    c = compiled("name: t\nactors:\n  - name: A\n    program:\n"
                 "      - open: {dev: smbus, expect: ok}\n      - exit: {}\n")
    res = run_scenario(c)
    assert not res.ok and res.exit_code == 1
    assert res.failures[0].message == "expected ok, got -ENODEV"  # no driver bound
    assert (res.failures[0].line, res.failures[0].where) == (5, "A step 1")
    assert res.events[-1].action.name == "task_exit"  # the run went on


def test_expect_forms():
    c = compiled("""
name: t
actors:
  - name: K
    kernel: true
    program:
      - iommu_alloc_global_pasid: {dev: nic0, expect: IOMMU_PASID_INVALID}
      - iommu_alloc_global_pasid: {dev: dsa0, as: p, expect: 1}
      - iommu_free_global_pasid: {pasid: $p, expect: 0, check: {pasid_free: [$p]}}
      - iommu_alloc_global_pasid: {dev: dsa0, expect: $p}
      - iommu_group_claim_dma_owner: {group: dsa0, owner: 0xF00D, expect: error}
      - iommu_group_claim_dma_owner: {group: dsa0, owner: 0xF00D, expect: -EPERM}
""")
    res = run_scenario(c)
    assert not res.failures, res.failures
    # the second PASID is never freed: a leak at quiescence, so the run is not ok (exit 1)
    assert [v.name for v in res.violations] == ["quiescence"] and not res.ok


def test_order_and_round_robin():
    text = """
name: t
actors:
  - name: A
    program: [{process_create: {}}, {process_create: {}}]
  - name: K
    kernel: true
    program: [{dma_fence_create: {}}, {dma_fence_create: {}}]
"""
    res = run_scenario(compiled(text))
    assert [e.actor for e in res.events if e.actor] == [1, 2, 1, 2]
    res = run_scenario(compiled(text + "order: [K, K, A]\n"))
    assert [e.actor for e in res.events if e.actor] == [2, 2, 1, 1]
    res = run_scenario(compiled(text + "order: [K, K, K]\n"))
    assert [f.where for f in res.failures] == ["order[2]"]
    assert "cannot run: finished" in res.failures[0].message


def test_policy_overrides_and_design_override():
    c = compiled("name: t\ndesign: E6-mmput-free\npolicy_overrides: {allocator: cyclic}\n")
    assert c.policy.name == "E6-mmput-free+allocator=CYCLIC"
    c = compiled("name: t\npolicy_overrides: {allocator: cyclic}\n", design="cyclic")
    assert c.policy.name.startswith("cyclic")
    with pytest.raises(ScenarioError, match="unknown design"):
        compiled("name: t\n", design="nope")


def test_inline_machine_and_group_by_device_name():
    c = compiled("""
name: t
machine:
  iommus: [{name: i0}]
  devices:
    - {name: a, iommu: i0, group: G, pasid_bits: 20, driver: e1000e}
    - {name: b, iommu: i0, group: G}
  drivers: [{name: e1000e}]
actors:
  - name: K
    kernel: true
    program:
      - iommu_group_claim_dma_owner: {group: b, owner: 1, expect: -EPERM}
      - device_release_driver: {dev: a}
      - iommu_group_claim_dma_owner: {group: G, owner: 1, expect: 0,
                                      check: {groups: {a: {owned: true, domain: blocking}}}}
""")
    assert [d.name for d in c.config.devices] == ["a", "b"]
    assert run_scenario(c).ok


def test_topology_machine_with_select(tmp_path):
    dump = tmp_path / "groups.txt"
    dump.write_text(
        "IOMMU Group 1 00:1f.3 Audio device [0403]: Intel Corporation Device [8086:a348]\n"
        "IOMMU Group 1 00:1f.4 SMBus [0c05]: Intel Corporation Device [8086:a323]\n")
    scen = tmp_path / "s.yaml"
    scen.write_text("""
name: topo
machine:
  topology: groups.txt
  select: {hda: "00:1f.3", smbus: "0000:00:1f.4"}
  drivers: [{name: vfio-pci, kind: vfio-pci, driver_managed_dma: true},
            {name: snd_hda_intel}]
actors:
  - name: K
    kernel: true
    program:
      - device_driver_attach: {dev: hda, drv: snd_hda_intel, expect: 0}
      - vfio_group_set_container: {group: smbus, container: 7, expect: -EPERM}
""")
    from pasidsim.scenario import load_scenario
    c = compile_scenario(load_scenario(scen))
    assert c.aliases == {"hda": "0000:00:1f.3", "smbus": "0000:00:1f.4"}
    assert run_scenario(c).ok
    scen.write_text(scen.read_text().replace('"00:1f.3"', '"00:1f.7"'))
    with pytest.raises(ScenarioError, match="select: device '00:1f.7' is not in the topology"):
        compile_scenario(load_scenario(scen))


def test_hardware_events_become_hw_steprefs():
    c = compiled("""
name: t
hardware: true
actors:
  - name: K
    kernel: true
    program: [{dma_fence_create: {as: f}}]
""")
    rs = c.initial()
    while c.enabled(rs):
        refs = c.enabled(rs)
        if any(r.actor == c.hw_actor for r in refs):
            break
        rs, _ = c.apply(rs, refs[0])
    try:
        hw = [r for r in c.enabled(rs) if r.actor == c.hw_actor]
    except AttributeError as e:  # the hardware model is still being written
        pytest.skip(f"pasidsim.hw.enabled_events not usable: {e}")
    assert hw and hw[0].hw.name == "dma_fence_signal"
    assert c.quiescent(rs)  # hardware events do not count for quiescence
    rs2, ev = c.apply(rs, hw[0])
    assert ev.ok and c.actor_name(ev.actor) == "hw" and rs2.sys.fences[rs.binds[0]] is True


def test_runstate_hash_is_stable_across_processes():
    code = ("from pasidsim.scenario import compile_scenario, load_scenario, run_scenario;"
            "print(hash(run_scenario(compile_scenario(load_scenario('{}'))).final))")
    from pasidsim.scenario import builtin_scenarios
    path = builtin_scenarios()["h1-fork-exit"]
    out = set()
    for seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        out.add(subprocess.run([sys.executable, "-c", code.format(path)], env=env,
                               capture_output=True, text=True, check=True).stdout)
    assert len(out) == 1


def test_hw_entries_in_order_run_hardware_events():
    c = compiled("""
name: t
hardware: true
actors:
  - name: K
    kernel: true
    program: [{dma_fence_create: {as: f}}, {dma_fence_create: {as: g}}]
order: [K, hw, hw, K]
""")
    res = run_scenario(c)
    try:
        hw = [e for e in res.events if c.actor_name(e.actor) == "hw"]
    except AttributeError as e:  # pragma: no cover - hardware model still being written
        pytest.skip(str(e))
    assert len(hw) == 1 and hw[0].action.name == "dma_fence_signal"
    assert [f.where for f in res.failures] == ["order[2]"]
    assert "no hardware event is pending" in res.failures[0].message


def test_setup_may_use_process_actor_names():
    c = compiled("""
name: t
setup:
  - fork: {tid: $A, as: child}
actors:
  - name: A
    program: [{exit: {}}]
""")
    res = run_scenario(c)
    assert res.ok and res.events[-1].action.name == "task_exit"
    assert res.final.binds[c.names.index("child")] > 0


def test_runstate_and_steprefs_pickle_round_trip():
    import pickle
    c = compiled(FORK)
    rs = c.initial()
    for _ in range(12):
        ref = c.enabled(rs)[0]
        assert pickle.loads(pickle.dumps(ref)) == ref
        rs, _ev = c.apply(rs, ref)
    back = pickle.loads(pickle.dumps(rs))
    assert back == rs and hash(back) == hash(rs)
