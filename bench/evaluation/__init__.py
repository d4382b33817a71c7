"""Evaluation: what a model is worth after pruning.

Owns: perplexity under the DESIGN.md protocol (`perplexity`) and zero-shot accuracy through
lm-eval (`zeroshot`, with the task configs in ``bench/tasks``).

May import: `bench.errors` and `bench.sources` (datasets, tokenizers). Never the harness or
training.
"""
