"""Runs one benchmark case: load, prune, (post-train), measure, and build its record.

Kept apart from pytest so it can be driven from unit tests and scripts. Loaded and pruned
models are memoised per session: the smol profile has four measurement cases per pruned
model, and `-k` slices still prune each model at most once.

A case with a post-training recipe (the nano profile) measures perplexity after pruning
(``ppl_pruned``), post-trains a copy of the pruned model (`bench.training.posttrain`) and measures again
(``ppl``); the unpruned model's perplexity (``ppl_dense``) and held-out loss (``L0``) are measured
once per model per session. Its record's ``posttrain`` entry carries what the scaling-law fit
needs: N0, N, rho, L0 and the trajectory of (tokens D, training loss, held-out loss).

A case with zero-shot tasks (``Case.zeroshot``) runs them through lm-eval on the in-memory model
(`bench.evaluation.zeroshot`) into ``zeroshot``; a post-trained case also before post-training, into
``zeroshot_pruned``.

A recipe with ``state_every`` saves resumable training states (`bench.training.train_state`) in the
case's working area, ``<results>/work/<case id>/train-state``. A killed case has no record, so
the next run computes it again: with ``resume`` it continues from the newest state whose case
fingerprint and provenance match this run's (any other is ignored with a printed reason);
without, a leftover state is removed and the case starts fresh. Once the record is written the
session calls `CaseRunner.case_done`, which removes the working area.
"""

from __future__ import annotations

import copy
import json
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from bench.evaluation import perplexity
from bench.studies.cases import Case
from bench.sources.models import LoadedModel, count_params, default_dtype, load_model, resolve_cache_dir, resolve_device
from bench.training.calibration_data import CALIB_KEYS


@dataclass
class RunContext:
    """Run-wide settings every case needs."""

    data_dir: str | None = None
    cache_dir: str | None = None
    device: str | None = None
    progress: bool = True
    results_dir: str | None = None  # where a case's working area (training states) lives; None: none saved
    resume: bool = False  # continue a killed case from its training state (else a leftover is removed)


@dataclass
class _Memo:
    """The last dense model and the last pruned variant, keyed so reuse is always exact."""

    dense_spec: str | None = None
    dense: LoadedModel | None = None
    pruned_key: tuple | None = None
    pruned: tuple | None = None  # (LoadedModel, prune report dict, keep-masks or None)
    dense_ppl: dict = field(default_factory=dict)  # (spec, evals) -> ppl dict
    dense_heldout: dict = field(default_factory=dict)  # (spec, slice/eval key) -> held-out loss
    zeroshot_tasks: dict = field(default_factory=dict)  # ZeroShotSpec -> validated lm-eval tasks


@dataclass
class CaseRunner:
    ctx: RunContext
    memo: _Memo = field(default_factory=_Memo)

    def prepare(self, cases: list[Case]) -> None:
        """Build the nano zoo models `cases` need that are not cached yet (several at once)."""
        from bench.training import zoo

        specs = [c.model for c in cases if zoo.is_nano(c.model)]
        if specs:
            zoo.ensure_all(specs, cache_dir=self.ctx.cache_dir, data_dir=self.ctx.data_dir, progress=self.ctx.progress)

    def dense(self, spec: str) -> LoadedModel:
        if self.memo.dense_spec != spec:
            self.memo.dense = None  # free the previous model before loading the next
            self.memo.pruned_key = self.memo.pruned = None
            self.memo.dense = self._load(spec)
            self.memo.dense_spec = spec
        return self.memo.dense

    def _load(self, spec: str) -> LoadedModel:
        from bench.training import zoo

        if not zoo.is_nano(spec):
            return load_model(spec, cache_dir=self.ctx.cache_dir, device=self.ctx.device)
        # The zoo needs the run's data directory to build, which the alias path cannot pass.
        loaded = zoo.load(spec, cache_dir=self.ctx.cache_dir, data_dir=self.ctx.data_dir, progress=self.ctx.progress)
        dev = resolve_device(self.ctx.device)
        loaded.model.to(device=dev, dtype=default_dtype(dev))
        loaded.info.update({"device": str(dev), "dtype": str(next(loaded.model.parameters()).dtype).replace("torch.", ""),
                            "placement": {"device_map": None, "devices": [str(dev)]}})
        return loaded

    def pruned(self, case: Case) -> tuple[LoadedModel, dict | None]:
        """The model a case measures: the dense model itself, or a pruned copy of it."""
        loaded, report, _ = self._pruned(case)
        return loaded, report

    def _pruned(self, case: Case) -> tuple[LoadedModel, dict | None, dict | None]:
        base = self.dense(case.model)
        if case.method in ("dense", "control"):
            return base, None, None
        if self.memo.pruned_key != case.prune_key:
            self.memo.pruned = None
            model = copy.deepcopy(base.model)
            report, masks = prune_model(model, base.tokenizer, case, self.ctx)
            self.memo.pruned = (LoadedModel(model, base.tokenizer, base.spec, base.kind, dict(base.info)), report, masks)
            self.memo.pruned_key = case.prune_key
        return self.memo.pruned

    def measure(self, loaded: LoadedModel, case: Case, model=None) -> dict:
        """Perplexity of `model` (default: the loaded one) for every EvalSpec of the case."""
        return {spec.key: perplexity.evaluate(
            model if model is not None else loaded.model, loaded.tokenizer, spec.dataset, spec.seq_len,
            max_windows=spec.max_windows, data_dir=self.ctx.data_dir, progress=self.ctx.progress)
            for spec in case.evals}

    def zeroshot(self, loaded: LoadedModel, case: Case, model=None) -> dict:
        """The case's lm-eval tasks on `model` (default: the loaded one), in memory."""
        from bench.evaluation import zeroshot

        model = model if model is not None else loaded.model
        spec = case.zeroshot
        if spec.max_length > zeroshot.model_positions(model):
            spec = replace(spec, max_length=zeroshot.default_window(model))
        if spec not in self.memo.zeroshot_tasks:
            self.memo.zeroshot_tasks[spec] = zeroshot.prepare(spec, self.ctx.data_dir)
        return zeroshot.evaluate(model, loaded.tokenizer, self.memo.zeroshot_tasks[spec])

    def dense_ppl(self, case: Case) -> dict:
        """The unpruned model's perplexities, measured once per model and evals per session."""
        key = (case.model, case.evals)
        if key not in self.memo.dense_ppl:
            self.memo.dense_ppl[key] = self.measure(self.dense(case.model), case)
        return self.memo.dense_ppl[key]

    def dense_heldout(self, case: Case, recipe) -> float:
        """L0: the unpruned model's held-out loss on the recipe's fixed windows (once per session).

        Measured by `bench.training.posttrain.initial_loss`, the same function, float32 master weights and
        autocast as every checkpoint's held-out loss, so L0 and the trajectory differ by training only.
        """
        from bench.training.posttrain import initial_loss

        key = (case.model, recipe.slices, recipe.seq_len, recipe.eval_windows, recipe.bf16)
        if key not in self.memo.dense_heldout:
            base = self.dense(case.model)
            self.memo.dense_heldout[key] = initial_loss(base.model, base.tokenizer, recipe, self.ctx.data_dir)
        return self.memo.dense_heldout[key]

    def run(self, case: Case, provenance: dict | None = None) -> dict:
        """Execute the case and return the fields of its record (without provenance).

        `provenance` is what the record will carry; a training state is resumed only when it was
        saved under the same one (None: computed here, as the session computes it).
        """
        from bench.training.zoo import non_embedding_params

        t0 = time.perf_counter()
        base = self.dense(case.model)
        params_before = count_params(base.model)
        loaded, report, masks = self._pruned(case)
        params_after = report["params_after"] if report and "params_after" in report else count_params(loaded.model)
        ne_before = non_embedding_params(base.model)
        # A method that masks in place (N:M) keeps dense tensors and counts the zeroed weights as
        # removed; they lie inside the decoder layers, so they leave the non-embedding count too.
        masked = count_params(loaded.model) - params_after
        ne_after = non_embedding_params(loaded.model) - masked
        fields = {
            "profile": case.profile,
            "model": {"spec": case.model, "key": case.model_key, "family": case.family,
                      "non_embedding_params": ne_before, **_model_meta(base)},
            "method": case.method,
            "label": case.label or case.method,
            "ratio": case.ratio,
            "config": case.config(),
            "fingerprint": case.fingerprint(),
            "seed": case.prune_options.get("seed", 0),
            "params": {"before": params_before, "after": params_after,
                       "achieved_ratio": 1 - params_after / params_before,
                       "non_embedding_before": ne_before, "non_embedding_after": ne_after},
            "prune_report": report,
            "status": "ok",
            "timings": {"prune_s": (report or {}).get("wall_time_s")},
        }
        if case.posttrain:
            self._posttrain(case, loaded, masks, fields, provenance)
        else:
            fields["ppl"] = self.measure(loaded, case)
            if case.zeroshot is not None:
                fields["zeroshot"] = self.zeroshot(loaded, case)
        fields["timings"]["case_s"] = time.perf_counter() - t0
        return fields

    def _posttrain(self, case: Case, loaded: LoadedModel, masks: dict | None, fields: dict,
                   provenance: dict | None = None) -> None:
        """Measure, post-train a copy, measure again; fills the record's post-training fields."""
        from bench.training.posttrain import Recipe, posttrain
        from bench.training.zoo import plateau_figure

        recipe = Recipe.from_options(case.posttrain_options)
        fields["ppl_dense"] = self.dense_ppl(case)
        dense = case.method in ("dense", "control")
        fields["ppl_pruned"] = fields["ppl_dense"] if dense else self.measure(loaded, case)
        if case.zeroshot is not None:
            fields["zeroshot_pruned"] = self.zeroshot(loaded, case)
        l0 = self.dense_heldout(case, recipe)
        checkpoint_eval = (lambda m: self.measure(loaded, case, model=m)) if recipe.ppl_at_checkpoints else None
        t0 = time.perf_counter()
        state = self.checkpointer(case, recipe, provenance)
        # Without state_every, a distributed case keeps every checkpoint's sharded state (DCP)
        # under the cache, by case (the behaviour before resumable states).
        state_dir = (resolve_cache_dir(self.ctx.cache_dir) / "posttrain-state" / case.fingerprint()
                     if recipe.processes > 1 and state is None else None)
        model, pt = posttrain(copy.deepcopy(loaded.model), loaded.tokenizer, recipe, data_dir=self.ctx.data_dir,
                              masks=masks, checkpoint_eval=checkpoint_eval, progress=self.ctx.progress,
                              state_dir=state_dir, state=state)
        fields["timings"]["posttrain_s"] = time.perf_counter() - t0
        params = fields["params"]
        pt.update({"L0": l0, "N0": params["before"], "N": params["after"], "rho": params["achieved_ratio"],
                   "N0_non_embedding": params["non_embedding_before"], "N_non_embedding": params["non_embedding_after"],
                   "masks_kept": bool(masks), "D_unit": "tokens", "loss_unit": "nats/token"})
        final = pt["trajectory"][-1]["val_loss"] if pt["trajectory"] else None
        if final is not None:
            pt["final_val_loss"] = final
            if case.method == "control":
                # The control figure: how much the unpruned base still improves with more
                # training; recovery of a pruned model is only meaningful when this is small.
                pt["control_improvement"] = plateau_figure(l0, final)
        if masks:
            from pruners.masks import mask_violations

            pt["mask_violations"] = mask_violations(model, masks)
        fields["posttrain"] = pt
        if pt["diverged"]:
            fields["status"] = "diverged"
            fields["ppl"] = {}
        else:
            fields["ppl"] = self.measure(loaded, case, model=model)
            if case.zeroshot is not None:
                fields["zeroshot"] = self.zeroshot(loaded, case, model=model)


    # ------------------------------------------------------------------ training states

    def work_dir(self, case: Case) -> Path | None:
        """The case's working area in the results directory (None: the run has none)."""
        return None if self.ctx.results_dir is None else Path(self.ctx.results_dir) / "work" / case.id

    def checkpointer(self, case: Case, recipe, provenance: dict | None = None):
        """The case's `bench.training.train_state.Checkpointer`, holding the state to resume from if any."""
        from bench.harness.provenance import case_provenance, stale_reasons
        from bench.training.train_state import Checkpointer, StateStore, say

        if recipe.state_every is None:
            return None
        work = self.work_dir(case)
        if work is None:
            say(f"{case.id}: state_every is set but this run has no results directory; no training state is saved")
            return None
        if provenance is None:
            provenance = case_provenance(case, cache_dir=self.ctx.cache_dir, data_dir=self.ctx.data_dir,
                                         device=self.ctx.device)
        provenance = json.loads(json.dumps(provenance, default=str))  # compared as a stored one reads back
        store = StateStore(work / "train-state", recipe.state_every,
                           identity={"case": case.id, "fingerprint": case.fingerprint(), "provenance": provenance})
        if not store.leftovers():
            return Checkpointer(store)
        if not self.ctx.resume:
            why = "left by a stopped run and removed: this run has no --resume"
            say(f"{case.id}: training state in {store.root} {why}")
            store.clear()
            return Checkpointer(store, report={"ignored": why})
        path, meta, why = store.latest()
        if path is None and why is None:
            why = "no complete state (a save was interrupted)"
        if path is not None:
            saved = meta.get("identity") or {}
            if saved.get("fingerprint") != case.fingerprint():
                why = f"config {saved.get('fingerprint')} -> {case.fingerprint()}"
            else:
                why = "; ".join(stale_reasons(saved.get("provenance"), provenance)) or None
        if why is None:
            return Checkpointer(store, resume_from=path)
        state = Checkpointer(store)
        state.ignore(f"{path.name if path else store.root.name}: {why}")
        store.clear()
        return state

    def case_done(self, case: Case) -> None:
        """The case's record is written: its working area (training states) is no longer needed."""
        work = self.work_dir(case)
        if work is not None and work.is_dir():
            shutil.rmtree(work, ignore_errors=True)
            if work.parent.is_dir() and not any(work.parent.iterdir()):
                work.parent.rmdir()  # no empty "work" folder left beside the records


def _model_meta(loaded: LoadedModel) -> dict:
    cfg = loaded.model.config
    return {"arch": getattr(cfg, "model_type", None), "layers": getattr(cfg, "num_hidden_layers", None),
            "hidden_size": getattr(cfg, "hidden_size", None), "info": loaded.info}


def prune_model(model, tokenizer, case: Case, ctx: RunContext) -> tuple[dict, dict | None]:
    """Prune `model` in place as `case` says.

    Returns:
        (the report as a dict, the keep-masks post-training must hold, or None when the
        method's report declares none: `PruneReport.keeps_masks`).
    """
    from bench.training.calibration_data import CalibrationSpec, load_calibration
    from bench.registry import make_config
    from pruners.registry import prune

    options = case.prune_options
    calib_fields = {CALIB_KEYS[k]: v for k, v in options.items() if k in CALIB_KEYS}
    method_fields = {k: v for k, v in options.items() if k not in CALIB_KEYS}
    config = make_config(case.method, ratio=case.ratio, **method_fields)
    calibration = None
    if calib_fields:
        if calib_fields.get("source") == "slimpajama" and "corpus_dir" not in calib_fields:
            # The study's post-training corpus directory serves calibration too (else the env var).
            calib_fields["corpus_dir"] = case.posttrain_options.get("corpus_dir")
        spec = CalibrationSpec(data_dir=ctx.data_dir, **calib_fields)
        calibration = load_calibration(tokenizer, spec)
    report = prune(model, calibration, config)
    return report.to_dict(), (report.masks if report.keeps_masks else None)

