"""Sources: where data and models come from, and what they cost to hold.

Owns: the local evaluation datasets (`data`), models by spec (`models`) from a models directory,
the HF cache or the hub (`hub`), converted-model caches (`cache`), device placement
(`placement`), and the memory estimate made before loading (`memory`).

May import: `bench.errors` only (and third-party libraries). Everything else in `bench` may
import it.
"""
