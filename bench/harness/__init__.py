"""The harness: the pytest plugin and everything that turns a study into finished cases.

Owns: the plugin and session (`plugin`, `session`), the case matrix (`cases`, `profiles`), running
one case (`runner`), what a case leaves behind (`records`, `provenance`; the lock on a results
directory is `bench.sources.locks.RunLock`), the checks before any case runs
(`preflight`), the fit of a study's records (`study`) and the gates on it (`gates`).

May import: `bench.errors`, `bench.studies`, `bench.sources`, `bench.training`,
`bench.evaluation`, and the leaf packages `pruners`, `fitting` and `reports`. Nothing below the
harness imports it back.
"""
