"""Sources: where data, models and stored results come from, and what they cost to hold.

Owns: the local evaluation datasets (`data`), calibration draws (`calibration`) and local
corpus directories (`corpora_local`), models by spec (`models`: resolution and loading, with
the loaders in `loaders`, the alias registry in `aliases`, the tiny test models in `tiny`,
devices and dtypes in `devices`) from a models directory, the HF cache or the hub (`hub`),
converted-model caches (`cache`), the results directory's records (`records`), atomic writes
(`atomic`), the locks between processes that share a cache or a results directory (`locks`),
and device placement (`placement`).

May import: the bottom of `bench` (`errors`, `env`, `progress`, `registry`) and the leaves
`pruners` (the pruned-model loader, the parameter count), `fitting` and `reports` (the record
type). Everything else in `bench` may import it.
"""
