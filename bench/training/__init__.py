"""Training: post-training a pruned model, and pre-training the offline nano zoo.

Owns: token streams from the post-training corpora (`corpus`, `corpora_local`), the recipe
(`recipe`), the loop and its trajectory (`loop`, `posttrain`), resumable state (`train_state`),
the multi-process runs (`distributed`), calibration documents for the pruners
(`calibration_data`, from the same local corpora), and the zoo of small pretrained bases (`zoo`,
`zoo_families`).

May import: `bench.errors`, `bench.sources` and `bench.evaluation` (the held-out loss at each
checkpoint), and the leaf `pruners` (masks kept during post-training). Never the harness.
"""
