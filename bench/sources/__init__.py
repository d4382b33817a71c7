"""Sources: where data and models come from, and what they cost to hold.

Owns: the local evaluation datasets (`data`), models by spec (`models`: resolution and loading,
with the loaders in `loaders`, the alias registry in `aliases`, the tiny test models in `tiny`,
devices and dtypes in `devices`) from a models directory, the HF cache or the hub (`hub`),
converted-model caches (`cache`), the locks between processes that share a cache or a results
directory (`locks`), and device placement (`placement`).

May import: `bench.errors` and the leaves `pruners` (the pruned-model loader, the parameter
count) and `fitting` (and third-party libraries). Everything else in `bench` may import it.
"""
