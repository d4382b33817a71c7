"""The benchmark session: everything the pytest plugin does, without pytest.

Pipeline (after pytest-benchmark's session object): collect cases -> run each (or resume it
from its stored record) -> write records -> summarise -> report and gates at the end. The
plugin only translates pytest hooks into calls on this object, so all of it can be unit
tested directly.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from bench.harness import records as rec_mod
from reports.numbers import fmt_num
from bench.studies.cases import Case
from bench.errors import UsageError, did_you_mean
from bench.sources.locks import RunLock
from bench.harness.profiles import DEFAULT_PROFILE, ProfileOptions, get_cases
from bench.harness.runner import CaseRunner, RunContext


@dataclass
class SessionOptions:
    profile: str = DEFAULT_PROFILE
    data_dir: str | None = None
    results_dir: str | None = None
    cache_dir: str | None = None
    device: str | None = None
    full_eval: bool = False
    resume: bool = False
    progress: bool = True
    threads: int | None = None  # torch intra-op threads (None: torch's default, one per core)
    law: str = "p2"
    holdout: tuple[str, ...] | None = None
    gates: tuple = ()  # bench.harness.gates check objects
    report: bool = True


@dataclass
class Finish:
    """What the end of a session produced: the study, gate verdicts and written files."""

    study: object = None
    verdicts: list = field(default_factory=list)
    files: dict = field(default_factory=dict)
    usage_error: str | None = None

    @property
    def failed_gates(self) -> list:
        return [v for v in self.verdicts if not v.passed]


@dataclass
class CaseOutcome:
    case: Case | None  # None for an outcome reported by an xdist worker (the controller has ids only)
    record: dict
    resumed: bool = False
    stale: str | None = None  # why a stored record was not reused, when one existed


@dataclass(frozen=True)
class Stored:
    """What `--resume` found for a case: a reusable record, or why there is none."""

    record: dict | None
    reason: str | None  # None: nothing stored; otherwise why the stored record is not reused


@dataclass
class BenchSession:
    options: SessionOptions
    outcomes: list[CaseOutcome] = field(default_factory=list)
    _results_dir: Path | None = None
    _runner: CaseRunner | None = None
    _cases: list[Case] | None = None
    finished: Finish | None = None
    selected: list[Case] | None = None  # the cases this run will execute (after -k), if known
    _prepared: bool = False
    _provenance: dict = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # unusable records met by the report step
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    argv: list[str] = field(default_factory=list)  # the command line of the run, for the records
    _lock: RunLock | None = None

    # ------------------------------------------------------------------ setup

    def cases(self) -> list[Case]:
        if self._cases is None:
            self._cases = get_cases(self.options.profile, ProfileOptions(full_eval=self.options.full_eval))
        return self._cases

    @property
    def results_dir(self) -> Path:
        """Created and checked on first use, so `pytest tests` never touches it."""
        if self._results_dir is None:
            self._results_dir = rec_mod.resolve_results_dir(self.options.results_dir)
        return self._results_dir

    @property
    def runner(self) -> CaseRunner:
        if self._runner is None:
            if self.options.threads is not None:
                import torch

                if self.options.threads < 1:
                    raise UsageError(f"--threads must be at least 1, got {self.options.threads}")
                torch.set_num_threads(self.options.threads)
            self._runner = CaseRunner(RunContext(
                data_dir=self.options.data_dir, cache_dir=self.options.cache_dir,
                device=self.options.device, progress=self.options.progress,
                results_dir=str(self.results_dir), resume=self.options.resume))
        return self._runner

    def acquire_results(self, run_id: str, owner_pid: int) -> None:
        """Own the results directory for this run (refused while another run holds it)."""
        lock = RunLock(self.results_dir, run_id, owner_pid)
        lock.acquire()
        self._lock = lock

    def holds_results(self) -> bool:
        return self._lock is not None

    def release_results(self) -> None:
        """Give the results directory up at the end of the run (the single process, or the
        xdist controller, which holds it for its workers)."""
        if self._lock is not None:
            self._lock.release()

    def worker_cuda_device(self, index: int) -> str | None:
        """The GPU xdist worker `index` is pinned to, when several are visible (else None)."""
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        if visible is not None:
            devices = [d for d in visible.split(",") if d.strip()]
        elif self.options.device in (None, "cuda"):
            import torch

            devices = [str(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
        else:
            devices = []
        return devices[index % len(devices)] if len(devices) > 1 else None

    # ------------------------------------------------------------------ running

    def provenance(self, case: Case) -> dict:
        """The provenance this run gives `case`'s record (computed once per case)."""
        from bench.harness.provenance import case_provenance

        if case.id not in self._provenance:
            self._provenance[case.id] = case_provenance(
                case, cache_dir=self.options.cache_dir, data_dir=self.options.data_dir, device=self.options.device)
        return self._provenance[case.id]

    def check_stored(self, case: Case) -> Stored:
        """The stored record of `case` if this run would make the same one, else why not.

        Same means: a readable record of this schema, status ok, the same config (fingerprint)
        and the same provenance (code, model, data, device, dtype, library versions).
        """
        from bench.harness.provenance import stale_reasons

        path = rec_mod.record_path(self.results_dir, case.id)
        if not path.is_file():
            return Stored(None, None)
        try:
            rec = rec_mod.read_record(path)
        except UsageError as exc:
            return Stored(None, f"unusable record ({exc})")
        if rec.get("status") != "ok":
            return Stored(None, f"status {rec.get('status')}")
        if rec.get("fingerprint") != case.fingerprint():
            return Stored(None, f"config {rec.get('fingerprint')} -> {case.fingerprint()}")
        reasons = stale_reasons(rec.get("provenance"), self.provenance(case))
        if reasons:
            return Stored(None, "; ".join(reasons))
        return Stored(rec, None)

    def stored(self, case: Case) -> dict | None:
        """The stored record of `case` when `--resume` may reuse it."""
        return self.check_stored(case).record

    def run_case(self, case: Case) -> dict:
        """Run (or resume) one case, write its record, and remember it for the summary."""
        stale = None
        if self.options.resume:
            found = self.check_stored(case)
            if found.record is not None:
                self.outcomes.append(CaseOutcome(case, found.record, resumed=True))
                return found.record
            stale = found.reason
        _ = self.results_dir  # fail on an unwritable directory before spending compute
        self.prepare(case)
        provenance = self.provenance(case)
        fields = self.runner.run(case, provenance=provenance)
        rec = rec_mod.new_record(case.id, provenance=provenance,
                                 invocation={"argv": self.argv, "run_id": self.run_id}, **fields)
        if stale is not None:
            # What --resume compared and why it ran the case again, for the user to inspect.
            rec["resume"] = {"rerun_because": stale}
        rec_mod.write_record(self.results_dir, rec)
        self.runner.case_done(case)  # the record is written: its training state is no longer needed
        self.outcomes.append(CaseOutcome(case, rec, stale=stale))
        if rec.get("status") == "diverged":
            # The record keeps the trajectory up to the divergence; the case still fails.
            from bench.training.posttrain import Diverged

            div = rec.get("posttrain", {}).get("divergence") or {}
            raise Diverged(
                f"post-training diverged at step {div.get('step')} ({div.get('tokens')} tokens): loss "
                f"{div.get('loss', div.get('val_loss'))} at lr {div.get('lr')}; the trajectory so far is kept in "
                f"{rec_mod.record_path(self.results_dir, case.id)} with status 'diverged'; lower the learning rate")
        return rec

    # ------------------------------------------------------------------ report and gates

    def finish(self) -> Finish:
        """Fit the law on every stored record, evaluate the gates, render the report.

        All records in the results directory take part, not only this run's, so `-k` slices
        and `--resume` runs build one complete report. A gate with nothing to evaluate is
        reported as a usage error.
        """
        from bench.errors import USER_ERRORS
        from bench.harness.study import StudyConfig, run_study

        fin = Finish()
        self.finished = fin
        if not self.outcomes:
            return fin
        records = rec_mod.load_records(self.results_dir, problems=self.problems)
        try:
            study = run_study(records, StudyConfig(law=self.options.law, holdout=self.options.holdout))
            fin.study = study if study.groups else None
            targets = {"study": fin.study, "run": [o.record for o in self.outcomes], "stored": records}
            for gate in self.options.gates:
                fin.verdicts.append(gate.check(targets[gate.needs]))
        except USER_ERRORS as exc:
            fin.usage_error = str(exc)
        if self.options.report:
            from reports.render import write_report

            fin.files = write_report(records, fin.study, [v.to_dict() for v in fin.verdicts], self.results_dir)
        return fin

    def validate(self) -> None:
        """Check the law, the held-out sizes and the profile before any case spends compute."""
        from fitting import available_laws

        cases = self.cases()
        law = self.options.law
        if law not in available_laws():
            raise UsageError(f"unknown law {law!r}{did_you_mean(law, available_laws())}; "
                             f"choose one of {', '.join(available_laws())}")
        if self.options.holdout:
            sizes = sorted({c.model_key for c in cases if c.posttrain})
            for size in self.options.holdout:
                if size not in sizes:
                    raise UsageError(
                        f"--holdout {size!r} is not a post-trained size of profile {self.options.profile!r}"
                        f"{did_you_mean(size, sizes)}; its sizes are {', '.join(sizes) or 'none (no post-training)'}")

    # ------------------------------------------------------------------ xdist

    @staticmethod
    def outcome_summary(outcome: CaseOutcome) -> dict:
        """What an xdist worker tells its controller about one case (plain JSON)."""
        return {"case_id": outcome.record["case_id"], "resumed": outcome.resumed, "stale": outcome.stale}

    def add_worker_outcomes(self, items: list[dict]) -> None:
        """On the controller: take a worker's outcomes, reading their records from disk."""
        for item in items:
            path = rec_mod.record_path(self.results_dir, item["case_id"])
            try:
                rec = rec_mod.read_record(path)
            except UsageError as exc:
                self.problems.append(f"skipped {exc}")
                continue
            self.outcomes.append(CaseOutcome(None, rec, resumed=item["resumed"], stale=item.get("stale")))
        # Profile order, whichever worker finished first: the summary reads the same every run.
        order = {c.id: i for i, c in enumerate(self.cases())}
        self.outcomes.sort(key=lambda o: order.get(o.record["case_id"], len(order)))

    def preflight(self, cases: list[Case], collect_only: bool = False) -> list:
        """Before any case runs: hub models resolve and every case fits its device (`bench.harness.preflight`).

        Cases `--resume` will reuse are not checked: they load nothing.
        """
        from bench.harness.preflight import check_cases

        if self.options.resume:
            cases = [c for c in cases if self.stored(c) is None]
        return check_cases(cases, device=self.options.device, cache_dir=self.options.cache_dir,
                           resolve_models=not collect_only)

    def select(self, cases: list[Case]) -> None:
        """Tell the session which cases this run executes (the plugin calls it after `-k`)."""
        self.selected = list(cases)

    def prepare(self, first: Case) -> None:
        """Before the first computed case: build the nano zoo models every pending case needs,
        all at once (in parallel on a multi-core CPU), rather than one by one inside cases."""
        if self._prepared:
            return
        self._prepared = True
        pending = [c for c in (self.selected or [first])
                   if c is first or not (self.options.resume and self.stored(c) is not None)]
        self.runner.prepare(pending)

    # ------------------------------------------------------------------ summary

    def summary_rows(self) -> list[list]:
        rows = []
        for out in self.outcomes:
            r = out.record
            params = r.get("params", {})
            ppl = "  ".join(f"{k}={fmt_num(v.get('ppl'))}" for k, v in sorted(r.get("ppl", {}).items()))
            rows.append([
                r["case_id"], r.get("label", r.get("method")),
                f"{params.get('after', 0):,}/{params.get('before', 0):,}",
                ppl, r.get("status"), "resumed" if out.resumed else f"{r.get('timings', {}).get('case_s', 0):.1f}s",
            ])
        return rows

    def summary_lines(self) -> list[str]:
        from tabulate import tabulate

        if not self.outcomes:
            return []
        table = tabulate(self.summary_rows(), headers=["case", "method", "params after/before",
                                                       "ppl ↓", "status", "time"], tablefmt="github")
        lines = [f"prunebench: {len(self.outcomes)} record(s) in {self.results_dir / 'records'}", *table.splitlines()]
        lines += [f"stale: {o.record['case_id']}: {o.stale} (ran again)" for o in self.outcomes if o.stale]
        fin = self.finished
        if fin is not None:
            if fin.study is not None:
                # A run-away or unidentified fit is named as such, never printed as a measurement.
                lines += [f"law {self.options.law}: extrapolation to {line}" for line in fin.study.heldout_lines()]
            for v in fin.verdicts:
                lines.append(f"{'GATE PASSED' if v.passed else 'GATE FAILED'} {v.name}: {v.detail}")
            if fin.usage_error:
                lines.append(f"prunebench: usage error: {fin.usage_error}")
        for problem in self.problems:
            lines.append(f"prunebench: {problem}")
        if fin is not None:
            if "report.md" in fin.files:
                lines.append(f"report: {fin.files['report.md']}")
        return lines

