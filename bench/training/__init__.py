"""Training: post-training a pruned model, and pre-training the offline nano zoo.

Owns: token streams from the training corpora (`corpus`), the recipe (`recipe`), the trainer's
loop (`trainer`) and what it runs on (`engine`: the single-process engine, precision, the
held-out loss), a case's post-training around it (`posttrain`), resumable state
(`train_state`), the multi-process runs (`distributed`), and the zoo of small pretrained bases
(`zoo`, `zoo_families`).

May import: `bench.env`, `bench.progress`, `bench.errors`, `bench.sources` and
`bench.evaluation` (the held-out loss at each checkpoint), and the leaf `pruners` (masks kept
during post-training). Never the studies or the harness.
"""
