"""Runs one benchmark case: load, prune, (post-train), measure, and build its record.

Kept apart from pytest so it can be driven from unit tests and scripts. Every model, a nano
zoo base included, loads through `bench.sources.models.load_model` with the run's environment
(`bench.env.RunEnv`: directories, device, progress). Loaded and pruned models are memoised per
session: the smol profile has four measurement cases per pruned model, and `-k` slices still
prune each model at most once. The case's own objects configure each step (its method config,
calibration spec, recipe, evaluation specs), and the runner builds the case's typed record
(`reports.records.Record`).

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

from bench.env import RunEnv
from bench.evaluation import perplexity
from bench.sources.cache import resolve_cache_dir
from bench.sources.loaders import LoadedModel
from bench.sources.models import load_model
from bench.studies.cases import Case
from pruners.report import count_params
from reports.records import ModelInfo, Params, Perplexity, PostTrain, Record, ZeroShot


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
    teacher_spec: str | None = None  # a distillation recipe's named teacher, loaded once
    teacher: object = None


@dataclass
class CaseRunner:
    env: RunEnv
    resume: bool = False  # continue a killed case from its training state (else a leftover is removed)
    memo: _Memo = field(default_factory=_Memo)

    def prepare(self, cases: list[Case]) -> None:
        """Build the nano zoo models `cases` need that are not cached yet (several at once)."""
        from bench.training import zoo, zoo_families

        specs = [c.model for c in cases if zoo_families.is_nano(c.model)]
        if specs:
            zoo.ensure_all(specs, self.env)

    def dense(self, spec: str) -> LoadedModel:
        if self.memo.dense_spec != spec:
            self.memo.dense = None  # free the previous model before loading the next
            self.memo.pruned_key = self.memo.pruned = None
            self.memo.dense = load_model(spec, self.env)
            self.memo.dense_spec = spec
        return self.memo.dense

    def pruned(self, case: Case) -> tuple[LoadedModel, dict | None]:
        """The model a case measures: the dense model itself, or a pruned copy of it."""
        loaded, report, _ = self._pruned(case)
        return loaded, report

    def _pruned(self, case: Case) -> tuple[LoadedModel, dict | None, dict | None]:
        base = self.dense(case.model)
        if case.unpruned:
            return base, None, None
        if self.memo.pruned_key != case.prune_key:
            self.memo.pruned = None
            model = copy.deepcopy(base.model)
            report, masks = prune_model(model, base.tokenizer, case, self.env)
            self.memo.pruned = (LoadedModel(model, base.tokenizer, base.spec, base.kind, dict(base.info)), report, masks)
            self.memo.pruned_key = case.prune_key
        return self.memo.pruned

    def measure(self, loaded: LoadedModel, case: Case, model=None) -> dict[str, Perplexity]:
        """Perplexity of `model` (default: the loaded one) for every EvalSpec of the case."""
        return {spec.key: Perplexity.from_json(perplexity.evaluate(
            model if model is not None else loaded.model, loaded.tokenizer, spec.dataset, spec.seq_len,
            max_windows=spec.max_windows, data_dir=self.env.data_dir, progress=self.env.progress,
            desc=f"{case.id}: {spec.key}"), f"{case.id} ppl {spec.key}")
            for spec in case.evals}

    def zeroshot(self, loaded: LoadedModel, case: Case, model=None) -> ZeroShot:
        """The case's lm-eval tasks on `model` (default: the loaded one), in memory."""
        from bench.evaluation import zeroshot

        model = model if model is not None else loaded.model
        spec = case.zeroshot
        if spec.max_length > zeroshot.model_positions(model):
            spec = replace(spec, max_length=zeroshot.default_window(model))
        if spec not in self.memo.zeroshot_tasks:
            self.memo.zeroshot_tasks[spec] = zeroshot.prepare(spec, self.env.data_dir)
        with self.env.progress.phase(f"{case.id}: zero-shot {', '.join(spec.tasks)}"):
            result = zeroshot.evaluate(model, loaded.tokenizer, self.memo.zeroshot_tasks[spec])
        return ZeroShot.from_json(result, f"{case.id} zeroshot")

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
            self.memo.dense_heldout[key] = initial_loss(base.model, base.tokenizer, recipe, self.env)
        return self.memo.dense_heldout[key]

    def run(self, case: Case, provenance: dict | None = None) -> Record:
        """Execute the case and return its record (provenance and stamp to be added by the session).

        `provenance` is what the record will carry; a training state is resumed only when it was
        saved under the same one (None: computed here, as the session computes it).
        """
        from bench.training.zoo_families import non_embedding_params

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
        cfg = base.model.config
        record = Record(
            case_id=case.id, status="ok", method=case.method, profile=case.study,
            model=ModelInfo(spec=case.model, key=case.model_key, family=case.family, non_embedding_params=ne_before,
                            arch=getattr(cfg, "model_type", None), layers=getattr(cfg, "num_hidden_layers", None),
                            hidden_size=getattr(cfg, "hidden_size", None), info=base.info,
                            nulls=frozenset({"arch", "layers", "hidden_size"})),
            label=case.label or case.method, ratio=case.ratio, config=case.config(), fingerprint=case.fingerprint(),
            # The study seed, when there are several; else the calibration draw's (schema 2's meaning).
            seed=case.seed if case.seed is not None else (case.calibration.seed if case.calibration is not None else 0),
            params=Params(before=params_before, after=params_after, achieved_ratio=1 - params_after / params_before,
                          non_embedding_before=ne_before, non_embedding_after=ne_after),
            prune_report=report, timings={"prune_s": (report or {}).get("wall_time_s")},
            nulls=frozenset({"prune_report"}))
        if case.recipe is not None:
            record = self._posttrain(case, loaded, masks, record, provenance)
        else:
            record = replace(record, ppl=self.measure(loaded, case),
                             zeroshot=self.zeroshot(loaded, case) if case.zeroshot is not None else None)
        record.timings["case_s"] = time.perf_counter() - t0
        record.timings["eval_tokens_per_s"] = _rate(record.ppl)
        if record.posttrain is not None:
            record.timings["posttrain_tokens_per_s"] = record.posttrain.rest.get("tokens_per_s")
        return record

    def _posttrain(self, case: Case, loaded: LoadedModel, masks: dict | None, record: Record,
                   provenance: dict | None = None) -> Record:
        """Measure, post-train a copy, measure again: the record with its post-training fields."""
        from bench.training.posttrain import posttrain
        from bench.training.zoo import plateau_figure

        recipe, teacher, note = self.objective(case)
        ppl_dense = self.dense_ppl(case)
        ppl_pruned = ppl_dense if case.unpruned else self.measure(loaded, case)
        zeroshot_pruned = self.zeroshot(loaded, case) if case.zeroshot is not None else None
        l0 = self.dense_heldout(case, recipe)
        checkpoint_eval = ((lambda m: {k: v.to_json() for k, v in self.measure(loaded, case, model=m).items()})
                           if recipe.ppl_at_checkpoints else None)
        t0 = time.perf_counter()
        state = self.checkpointer(case, recipe, provenance)
        # Without state_every, a distributed case keeps every checkpoint's sharded state (DCP)
        # under the cache, by case (the behaviour before resumable states).
        state_dir = (resolve_cache_dir(self.env.cache_dir) / "posttrain-state" / case.fingerprint()
                     if recipe.processes > 1 and state is None else None)
        model, pt = posttrain(copy.deepcopy(loaded.model), loaded.tokenizer, recipe, self.env, masks=masks,
                              checkpoint_eval=checkpoint_eval, state_dir=state_dir, state=state,
                              desc=f"{case.id}: post-train", teacher=teacher)
        if note:
            pt["objective_note"] = note
        record.timings["posttrain_s"] = time.perf_counter() - t0
        params = record.params
        pt.update({"L0": l0, "N0": params.before, "N": params.after, "rho": params.achieved_ratio,
                   "N0_non_embedding": params.non_embedding_before, "N_non_embedding": params.non_embedding_after,
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
        record = replace(record, ppl_dense=ppl_dense, ppl_pruned=ppl_pruned, zeroshot_pruned=zeroshot_pruned,
                         posttrain=PostTrain.from_json(pt, f"{case.id} posttrain"))
        if pt["diverged"]:
            return replace(record, status="diverged", ppl={})
        return replace(record, ppl=self.measure(loaded, case, model=model),
                       zeroshot=self.zeroshot(loaded, case, model=model) if case.zeroshot is not None else None)


    def objective(self, case: Case):
        """(the recipe post-training runs, its teacher or None, a note for the record or None).

        A distillation recipe's teacher is the case's unpruned model (the one this session
        already holds, shared by the model's cases) or the recipe's `teacher` spec, loaded once.
        An unpruned (control) case has no teacher to learn from: it runs the recipe with the
        cross-entropy objective, and its record says so.
        """
        recipe = case.training_recipe
        if recipe.objective == "ce":
            return recipe, None, None
        if case.unpruned:
            ce = replace(recipe, objective="ce", temperature=1.0, kd_weight=0.5, teacher=None)
            return ce, None, (f"{case.method}: an unpruned model has no teacher to learn from, so it ran the "
                              f"recipe with objective ce instead of {recipe.objective}")
        if recipe.teacher is None:
            return recipe, self.dense(case.model).model, None
        if self.memo.teacher_spec != recipe.teacher:
            self.memo.teacher = None  # free the previous one first
            self.memo.teacher = load_model(recipe.teacher, self.env).model
            self.memo.teacher_spec = recipe.teacher
        return recipe, self.memo.teacher, None

    # ------------------------------------------------------------------ training states

    def work_dir(self, case: Case) -> Path | None:
        """The case's working area in the results directory (None: the run has none)."""
        return None if self.env.results_dir is None else Path(self.env.results_dir) / "work" / case.id

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
            provenance = case_provenance(case, self.env)
        provenance = json.loads(json.dumps(provenance, default=str))  # compared as a stored one reads back
        store = StateStore(work / "train-state", recipe.state_every,
                           identity={"case": case.id, "fingerprint": case.fingerprint(), "provenance": provenance})
        if not store.leftovers():
            return Checkpointer(store)
        if not self.resume:
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


def _rate(measured: dict | None) -> float | None:
    """Evaluation throughput of a case's final perplexities: window tokens per second."""
    done = [p for p in (measured or {}).values() if p.rest.get("wall_s")]
    wall = sum(p.rest["wall_s"] for p in done)
    return sum(p.windows * p.seq_len for p in done) / wall if wall > 0 else None


def prune_model(model, tokenizer, case: Case, env: RunEnv) -> tuple[dict, dict | None]:
    """Prune `model` in place with the case's method config and calibration draw.

    Returns:
        (the report as a dict, the keep-masks post-training must hold, or None when the
        method's report declares none: `PruneReport.keeps_masks`).
    """
    from bench.sources.calibration import load_calibration
    from pruners.registry import prune

    calibration = None if case.calibration is None else load_calibration(tokenizer, case.calibration, env.data_dir)
    with env.progress.phase(f"{case.id}: prune"):
        report = prune(model, calibration, case.prune)
    return report.to_dict(), (report.masks if report.keeps_masks else None)

