"""The paper's study as its Table 1 states it: the six models, their hub ids and depth ratios.

Shared by the unit tests of the `paper` study (tests/unit/test_studies_paper.py) and its run
at a tiny budget (tests/e2e/test_paper_tiny.py).
"""

from __future__ import annotations

# Table 1 of the paper (seeds/003_eb1dd74dcb4eca82.txt): depth ratios per model, in percent.
TABLE1_DEPTH = {
    "llama-3.2-1b": (15, 25, 30), "llama-3.2-3b": (16, 25, 34), "llama-3.1-8b": (16, 24, 33),
    "qwen2.5-0.5b": (15, 21, 27), "qwen2.5-1.5b": (15, 24, 33), "qwen2.5-3b": (17, 25, 32),
}
HUB = {"llama-3.2-1b": "meta-llama/Llama-3.2-1B", "llama-3.2-3b": "meta-llama/Llama-3.2-3B",
       "llama-3.1-8b": "meta-llama/Llama-3.1-8B", "qwen2.5-0.5b": "Qwen/Qwen2.5-0.5B",
       "qwen2.5-1.5b": "Qwen/Qwen2.5-1.5B", "qwen2.5-3b": "Qwen/Qwen2.5-3B"}


def paper_ids() -> list[str]:
    ids = []
    for key, depth in TABLE1_DEPTH.items():
        ids.append(f"paper-{key}-control")
        ids += [f"paper-{key}-depth-{r / 100:g}" for r in depth]
        ids += [f"paper-{key}-width-{r:g}" for r in (0.15, 0.25, 0.35)]
        ids.append(f"paper-{key}-2of4-sparsegpt")
    return ids
