"""nemesis: fault injection on the local cluster, and a checker of what really runs.

`python -m nemesis` boots (or reuses) the 5-host local cluster, runs each scenario N times
(a mixed workload, one fault with its own heal, a sampler of every host's systemd during the
fault, a checker after convergence) and prints a table and one JSON line of totals.
Modules: cluster (the local cluster tool's Python face), workload, sampler, checker,
scenarios, runner, report, __main__ (the command line).
"""
