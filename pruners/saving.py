"""Saving and loading pruned models.

* Depth and width pruned models are ordinary checkpoints: the surgery keeps the config in
  step with the weights, so ``AutoModelForCausalLM.from_pretrained(path)`` gives identical
  logits.
* Block-wise pruned models whose layers differ in width (any layer range short of all
  layers, or head counts the stock config rejects) carry per-layer sizes in the config as
  ``prunebench_layer_sizes`` (one ``{"num_attention_heads", "num_key_value_heads",
  "intermediate_size"}`` per layer); the stock fields keep the template widths.
  `save_pruned` also writes ``modeling_prunebench.py`` (a copy of `pruners.hf_modeling`)
  and an ``auto_map``, so the checkpoint loads with plain transformers as
  ``AutoModelForCausalLM.from_pretrained(path, trust_remote_code=True)``, or without remote
  code as ``load_pruned(path)``. A plain ``from_pretrained`` without either fails loudly on
  the size mismatch; it never loads wrong weights.
* N:M models save dense with exact zeros; the config records ``prunebench_nm = {"n", "m",
  "method"}`` and `load_pruned` verifies the pattern on every decoder Linear.

`save_pruned` writes atomically: everything goes into a temporary sibling directory that is
renamed into place at the end, so a failure leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from pruners.errors import PrunerError
from pruners import hf_modeling
from pruners.adapter import LAYER_SIZES_KEY
from pruners.nm import NM_KEY, check_pattern

REMOTE_FILE = "modeling_prunebench.py"
REPORT_FILE = "prunebench_report.json"


def save_pruned(model, out_dir, tokenizer=None, report=None) -> Path:
    """Save `model` (and optionally its tokenizer and report) to a new directory `out_dir`.

    Raises:
        PrunerError: `out_dir` already exists and is not empty.
    """
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise PrunerError(f"output directory {out} already exists and is not empty; remove it or choose another --out")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        model.save_pretrained(tmp)
        if getattr(model.config, LAYER_SIZES_KEY, None):
            _add_remote_code(tmp, model.config.model_type)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        if report is not None:
            data = report.to_dict() if hasattr(report, "to_dict") else report
            (tmp / REPORT_FILE).write_text(json.dumps(data, indent=1) + "\n")
        if out.exists():
            out.rmdir()  # empty, checked above
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _add_remote_code(path: Path, model_type: str) -> None:
    cls = hf_modeling.CLASSES[model_type].__name__
    shutil.copyfile(hf_modeling.__file__, path / REMOTE_FILE)
    cfg_file = path / "config.json"
    cfg = json.loads(cfg_file.read_text())
    cfg["auto_map"] = {"AutoModelForCausalLM": f"{REMOTE_FILE[:-3]}.{cls}"}
    cfg_file.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")


def load_pruned(path, dtype=None, device=None):
    """Load any prunebench checkpoint (plain, per-layer widths, or N:M) and verify it.

    Args:
        path: a directory written by `save_pruned` or `save_pretrained`.
        dtype: torch dtype to load in; None keeps transformers' default.
        device: where to put the model; None leaves it on the CPU.
    Raises:
        PrunerError: no config.json, or an N:M checkpoint whose zeros break its pattern.
    """
    from transformers import AutoConfig, AutoModelForCausalLM

    path = Path(path)
    if not (path / "config.json").is_file():
        raise PrunerError(f"{path} has no config.json; pass a directory written by save_pruned/save_pretrained")
    config = AutoConfig.from_pretrained(path)
    kwargs = {} if dtype is None else {"dtype": dtype}
    if getattr(config, LAYER_SIZES_KEY, None):
        cls = hf_modeling.CLASSES.get(config.model_type)
        if cls is None:
            raise PrunerError(f"{path}: per-layer widths are supported for {', '.join(hf_modeling.CLASSES)}, "
                             f"not {config.model_type!r}")
        model = cls.from_pretrained(path, config=config, **kwargs)
    else:
        model = AutoModelForCausalLM.from_pretrained(path, config=config, **kwargs)
    nm = getattr(config, NM_KEY, None)
    if nm:
        bad = check_pattern(model, int(nm["n"]), int(nm["m"]))
        if bad:
            raise PrunerError(f"{path}: {len(bad)} weight(s) break the saved {nm['n']}:{nm['m']} pattern "
                             f"(first: {bad[0]}); the checkpoint was modified after pruning")
    if device is not None:
        model.to(device)
    return model.eval()
