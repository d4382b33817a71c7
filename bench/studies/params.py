"""Exact parameter counts of a study's cases from model configs alone (meta device, no weights).

For `prunebench studies expand`: each case's model is built on the meta device from its
config and pruned by the method's own surgery (`pruners.registry.prune`), which on the meta
device chooses arbitrary channels or layers but removes exactly as many as a real run. So the
counts are the real code's, without a download or a calibration pass.

A config is reachable from (first that applies):

* a directory of public configs named ``<org>--<name>.json`` (``--configs DIR``; the layout of
  ``tests/configs``) for hub ids;
* the nano zoo's family definitions, and the tiny test models;
* a local ``save_pretrained`` directory's ``config.json``;
* the cached conversion of a GGUF file, else the GGUF file's own metadata;
* a hub id's local copy: the models directory (``$PRUNEBENCH_MODELS_DIR``), then the Hugging
  Face cache (`bench.sources.hub.find_local`; never the network).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from bench.studies.cases import Case
from bench.errors import USER_ERRORS, UsageError


@dataclass(frozen=True)
class Counted:
    """A case's parameter counts, or why there are none."""

    before: int | None = None
    after: int | None = None
    source: str | None = None  # where the config came from
    missing: str | None = None  # why no config was found
    tensors: int | None = None  # elements of the pruned model's tensors (N:M keeps dense tensors)
    lora_io: int | None = None  # sum of in + out features of the LoRA target projections

    @property
    def achieved(self) -> float | None:
        return None if self.before is None else 1 - self.after / self.before


def config_file_name(spec: str) -> str:
    """``meta-llama/Llama-3.2-1B`` (or ``...@revision``) -> ``meta-llama--Llama-3.2-1B.json``."""
    from bench.sources import hub

    parsed = hub.parse(spec)
    return (parsed.hub_id if parsed is not None else spec).replace("/", "--") + ".json"


def find_config(spec: str, configs_dir: Path | None = None, cache_dir=None, models_dir=None):
    """(transformers config, where it came from), or (None, why not); `cache_dir` and
    `models_dir` are the run's (`bench.env.RunEnv`)."""
    from transformers import AutoConfig

    from bench.sources import hub
    from bench.sources.aliases import smollm2_gguf_path
    from bench.sources.cache import resolve_cache_dir
    from bench.sources.loaders import _file_key
    from bench.sources.tiny import tiny_config
    from bench.training import zoo_families

    if configs_dir is not None and (configs_dir / config_file_name(spec)).is_file():
        path = configs_dir / config_file_name(spec)
        return AutoConfig.for_model(**json.loads(path.read_text())), str(path)
    if zoo_families.is_nano(spec):
        fam, size = zoo_families.parse_spec(spec)
        return fam.model_config(size), f"zoo family {fam.name}"
    if spec in ("tiny-llama", "tiny-qwen2"):
        return tiny_config(spec.split("-", 1)[1]), "bench.sources.tiny.tiny_config"
    path = Path(spec).expanduser()
    if path.is_dir() and (path / "config.json").is_file():
        return AutoConfig.from_pretrained(path), str(path / "config.json")
    gguf = smollm2_gguf_path() if spec == "smollm2-135m" else (path if path.suffix == ".gguf" else None)
    if gguf is not None and gguf.is_file():
        converted = resolve_cache_dir(cache_dir) / "models" / f"gguf-{gguf.stem}-{_file_key(gguf)}"
        if (converted / "config.json").is_file():
            return AutoConfig.from_pretrained(converted), str(converted / "config.json")
        return AutoConfig.from_pretrained(gguf.parent, gguf_file=gguf.name), f"{gguf} (GGUF metadata)"
    if hub.parse(spec) is not None:
        local = hub.find_local(spec, revision=False, models=models_dir)  # a pin matching no local copy (offline) raises
        if local is not None:
            return AutoConfig.from_pretrained(local.path), f"{local.source} {local.path / 'config.json'}"
        where = f"no {config_file_name(spec)} in {configs_dir}" if configs_dir else "no --configs DIR given"
        return None, f"not in the models directory or the HF cache, and {where}"
    return None, "not a hub id, zoo model, local directory or GGUF file"


def lora_features(model) -> int:
    """Sum of in + out features over the projections LoRA adapts (`bench.training.posttrain.LORA_TARGETS`):
    a rank-r adapter set has r times this many parameters."""
    import torch

    from bench.training.recipe import LORA_TARGETS

    return sum(m.in_features + m.out_features for name, m in model.named_modules()
               if isinstance(m, torch.nn.Linear) and name.rsplit(".", 1)[-1] in LORA_TARGETS)


def meta_model(config):
    """A weightless model of `config` (a copy: surgery rewrites its model's config in place)."""
    import copy

    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(copy.deepcopy(config))


def count_cases(cases: list[Case], configs_dir: Path | None = None, cache_dir=None,
                models_dir=None) -> dict[str, Counted]:
    """case id -> its counts, pruning each distinct (model, method, ratio, options) once with
    the case's own method config."""
    from pruners.registry import prune
    from pruners.report import count_params

    import copy

    configs: dict[str, tuple] = {}
    built: dict[str, object] = {}  # spec -> its meta model (copied for each surgery: ~50x cheaper)
    by_prune: dict[tuple, Counted] = {}
    out = {}
    for case in cases:
        if case.model not in configs:
            configs[case.model] = find_config(case.model, configs_dir, cache_dir, models_dir)
        config, source = configs[case.model]
        if config is None:
            out[case.id] = Counted(missing=source)
            continue
        if case.prune_key not in by_prune:
            if case.model not in built:
                built[case.model] = meta_model(config)
            model = copy.deepcopy(built[case.model])
            before = count_params(model)
            after = before
            if not case.unpruned:
                try:
                    after = prune(model, None, case.prune).params_after
                except USER_ERRORS as exc:
                    raise UsageError(f"case {case.id}: {exc}") from None
            by_prune[case.prune_key] = Counted(before, after, source, tensors=count_params(model),
                                               lora_io=lora_features(model))
        out[case.id] = by_prune[case.prune_key]
    return out
