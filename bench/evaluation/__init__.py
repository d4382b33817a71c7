"""Evaluation: what a model is worth after pruning.

Owns: perplexity under the DESIGN.md protocol (`perplexity`) and zero-shot accuracy through
lm-eval (`zeroshot`, with the task configs in ``bench/tasks``).

May import: the bottom of `bench` (`errors`, `env`, `progress`) and `bench.sources` (datasets,
tokenizers). Never training, the studies or the harness.
"""
