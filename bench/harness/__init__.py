"""The harness: the pytest plugin and everything that turns a study into finished cases.

Owns: the plugin and session (`plugin`, `session`), the run's configuration (`run_config`: the
study read once, the command line merged into it), running one case (`runner`), what a record
says made it (`provenance`; the records themselves are `bench.sources.records`), the checks
before any case runs (`preflight`, with the memory estimate of a case from its model's config
in `memory`), and the law fitted to a run's records (`law_fit`: records to grouped runs in
`fit_runs`, one group's fit and tests in `group_fit`). The gates it judges by are
`bench.studies.gates`.

May import: the bottom of `bench` (`errors`, `env`, `progress`, `registry`), `bench.studies`,
`bench.sources`, `bench.training`, `bench.evaluation`, and the leaf packages `pruners`,
`fitting` and `reports`. Nothing below the harness imports it back.
"""
