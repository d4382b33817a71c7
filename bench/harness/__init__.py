"""The harness: the pytest plugin and everything that turns a study into finished cases.

Owns: the plugin and session (`plugin`, `session`), the built-in and registered profiles
(`profiles`; a case itself is `bench.studies.cases.Case`), running one case (`runner`), what a
case leaves behind (`records`, `provenance`; the lock on a results directory is
`bench.sources.locks.RunLock`), the checks before any case runs (`preflight`, with the memory
estimate of a case from its model's config in `memory`), the fit of a study's records (`study`:
records to grouped runs in `study_runs`, one group's fit and tests in `group_fit`) and the gates
on it (`gates`, with the scopes parsed in `bench.studies.gate_specs`).

May import: `bench.errors`, `bench.studies`, `bench.sources`, `bench.training`,
`bench.evaluation`, and the leaf packages `pruners`, `fitting` and `reports`. Nothing below the
harness imports it back.
"""
