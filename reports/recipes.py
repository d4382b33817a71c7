"""Post-training recipes as records carry them (`reports.records.Record.recipe_config`): a
recipe's label and summary.

A recipe's label ("full-3f2a1c": its kind and a digest of what changes the loss curve) names
one experiment: `bench.harness.fit_runs` groups runs by it, and the report matches a pruned run
with the control run of the same recipe by it. Pure functions of a declared recipe (a dict).
"""

from __future__ import annotations

import hashlib
import json


# Recipe fields that change how a run executes or what it records, not the loss curve it
# traces: runs that differ only in these belong to one experiment.
# corpus_dir is a machine path: the corpus's identity is in the record's data provenance instead.
EXECUTION_ONLY = ("micro_batch_tokens", "grad_checkpointing", "ppl_at_checkpoints", "processes", "engine",
                  "backend", "checkpoint_every", "checkpoints", "checkpoint_count", "corpus_dir", "state_every")


def recipe_label(cfg: dict) -> str:
    """A short, stable name of a recipe config: its kind and a digest ("full-3f2a1c",
    "full-kd-29bba0" for a distillation objective).

    The digest is of the case's declared recipe, so the label stays the same across runs and
    machines, and two profiles that post-train differently never share one. Left out of it:
    the execution-only fields, and the token budget under a constant schedule, where a shorter
    run is a prefix of a longer one (the paper's 0.5B- and 1B-token models are one experiment).
    """
    if not cfg:
        return "unrecorded"
    kind = "lora" if cfg.get("lora") else "full"
    if cfg.get("objective", "ce") != "ce":  # distillation: the objective names the experiment too
        kind += f"-{cfg['objective']}"
    ident = {k: v for k, v in cfg.items() if k not in EXECUTION_ONLY}
    if ident.get("schedule", "constant") == "constant":
        ident.pop("tokens", None)
    digest = hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()[:6]
    return f"{kind}-{digest}"


def recipe_summary(cfg: dict) -> str:
    """The recipe in a few words, for the report ("full, lr 0.0005 constant, 131,072 tokens")."""
    if not cfg:
        return "not recorded"
    kind = f"LoRA r={cfg.get('lora_r', 8)}" if cfg.get("lora") else "full"
    parts = [kind]
    if cfg.get("objective", "ce") != "ce":
        parts.append(f"{cfg['objective']} at T={cfg.get('temperature', 1.0):g}"
                     + (f", kd_weight {cfg.get('kd_weight', 0.5):g}" if cfg["objective"] == "kd+ce" else "")
                     + (f" from {cfg['teacher']}" if cfg.get("teacher") else " from the unpruned model"))
    if "lr" in cfg:
        parts.append(f"lr {cfg['lr']:g}" + (f" {cfg['schedule']}" if cfg.get("schedule") else ""))
    if "tokens" in cfg:
        parts.append(f"{int(cfg['tokens']):,} tokens")
    if "batch_tokens" in cfg:
        parts.append(f"batch {int(cfg['batch_tokens']):,}")
    return ", ".join(parts)
