"""Runs one benchmark case: load, prune, (post-train), measure, and build its record.

Kept apart from pytest so it can be driven from unit tests and scripts. Loaded and pruned
models are memoised per session: the smol profile has four measurement cases per pruned
model, and `-k` slices still prune each model at most once.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field

from bench import perplexity
from bench.cases import Case
from bench.models import LoadedModel, count_params, load_model

CALIB_KEYS = {"calibration": "source", "samples": "samples", "calib_seq_len": "seq_len", "seed": "seed"}


@dataclass
class RunContext:
    """Run-wide settings every case needs."""

    data_dir: str | None = None
    cache_dir: str | None = None
    device: str | None = None
    progress: bool = True


@dataclass
class _Memo:
    """The last dense model and the last pruned variant, keyed so reuse is always exact."""

    dense_spec: str | None = None
    dense: LoadedModel | None = None
    pruned_key: tuple | None = None
    pruned: tuple | None = None  # (LoadedModel, prune report dict)


@dataclass
class CaseRunner:
    ctx: RunContext
    memo: _Memo = field(default_factory=_Memo)

    def dense(self, spec: str) -> LoadedModel:
        if self.memo.dense_spec != spec:
            self.memo.dense = None  # free the previous model before loading the next
            self.memo.pruned_key = self.memo.pruned = None
            self.memo.dense = load_model(spec, cache_dir=self.ctx.cache_dir, device=self.ctx.device)
            self.memo.dense_spec = spec
        return self.memo.dense

    def pruned(self, case: Case) -> tuple[LoadedModel, dict | None]:
        """The model a case measures: the dense model itself, or a pruned copy of it."""
        base = self.dense(case.model)
        if case.method in ("dense", "control"):
            return base, None
        if self.memo.pruned_key != case.prune_key:
            self.memo.pruned = None
            model = copy.deepcopy(base.model)
            report = prune_model(model, base.tokenizer, case, self.ctx)
            self.memo.pruned = (LoadedModel(model, base.tokenizer, base.spec, base.kind, dict(base.info)), report)
            self.memo.pruned_key = case.prune_key
        return self.memo.pruned

    def run(self, case: Case) -> dict:
        """Execute the case and return the fields of its record (without provenance)."""
        t0 = time.perf_counter()
        base = self.dense(case.model)
        params_before = count_params(base.model)
        loaded, report = self.pruned(case)
        params_after = count_params(loaded.model)
        ppl = {}
        for spec in case.evals:
            ppl[spec.key] = perplexity.evaluate(
                loaded.model, loaded.tokenizer, spec.dataset, spec.seq_len,
                max_windows=spec.max_windows, data_dir=self.ctx.data_dir, progress=self.ctx.progress)
        return {
            "profile": case.profile,
            "model": {"spec": case.model, "key": case.model_key, "family": case.family, **_model_meta(base)},
            "method": case.method,
            "label": case.label or case.method,
            "ratio": case.ratio,
            "config": case.config(),
            "fingerprint": case.fingerprint(),
            "seed": case.prune_options.get("seed", 0),
            "params": {"before": params_before, "after": params_after,
                       "achieved_ratio": 1 - params_after / params_before},
            "prune_report": report,
            "ppl": ppl,
            "status": "ok",
            "timings": {"case_s": time.perf_counter() - t0,
                        "prune_s": (report or {}).get("wall_time_s")},
        }


def _model_meta(loaded: LoadedModel) -> dict:
    cfg = loaded.model.config
    return {"arch": getattr(cfg, "model_type", None), "layers": getattr(cfg, "num_hidden_layers", None),
            "hidden_size": getattr(cfg, "hidden_size", None), "info": loaded.info}


def prune_model(model, tokenizer, case: Case, ctx: RunContext) -> dict:
    """Prune `model` in place as `case` says; returns the pruning report as a dict."""
    from pruners.calibration import CalibrationSpec, build_calibration
    from pruners.registry import make_config, prune

    options = case.prune_options
    calib_fields = {CALIB_KEYS[k]: v for k, v in options.items() if k in CALIB_KEYS}
    method_fields = {k: v for k, v in options.items() if k not in CALIB_KEYS}
    config = make_config(case.method, ratio=case.ratio, **method_fields)
    calibration = None
    if calib_fields:
        spec = CalibrationSpec(data_dir=ctx.data_dir, **calib_fields)
        calibration = build_calibration(spec, tokenizer)
    report = prune(model, calibration, config)
    return report.to_dict()

