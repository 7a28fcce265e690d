"""The workload simulator (``pasidsim simulate``): seeded discrete-event runs (SimPy) of many
processes, devices and latencies on the model's one ``step``; metrics over time, plots,
design comparisons and parameter sweeps (optionally on Ray); a violation saved as a scenario
that ``pasidsim run`` replays.  See :mod:`pasidsim.sim.engine`."""
