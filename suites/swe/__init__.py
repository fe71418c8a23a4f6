"""The SWE-bench style suite: task instances, workspaces, execution backends, grading.

* `suites.swe.instances`: SWE-bench's instance schema, loading JSONL / JSON /
  Parquet exports, filters (task ids, limit, shard), the bundled mini suite.
* `suites.swe.workspace`: a git checkout at base_commit per task run, its diff
  (the model patch), patch application, clean-up (`remove_stale_workspaces`).
* `suites.swe.execution`: running commands locally (timeout, output cap,
  scrubbed environment, optional bwrap/unshare guard, network off) or in Docker.
* `suites.swe.limits`: resource limits of commands and grading runs (processes,
  memory, file size): per-command cgroups, rlimits, stale-cgroup clean-up.
* `suites.swe.grading`: SWE-bench grading (FAIL_TO_PASS / PASS_TO_PASS) and
  the predictions file.
* `suites.swe.build_instances`: regenerates instances.jsonl from projects/.
* `suites.swe.sim_agents`: the simulator's SWE agents (`sim:swe-oracle`,
  `sim:swe-explorer`, `sim:swe-flailer`), loaded by name by `harness.sim`.

Importing this package does nothing; import the submodules.
"""
