"""The benchmark session: everything the pytest plugin does, without pytest.

Pipeline (after pytest-benchmark's session object): collect cases -> run each (or resume it
from its stored record) -> write records -> summarise -> fit the law, judge the gates and
render the report at the end. The plugin only translates pytest hooks into calls on this
object, so all of it can be unit tested directly.

A session is made of the command line (`bench.harness.run_config.CommandLine`), from which it
builds its `RunConfig` once, on first use (a run that selects no benchmark case never reads a
study), and the run environment (`bench.env.RunEnv`).
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path

from bench.env import RunEnv
from bench.errors import UsageError
from bench.harness.run_config import CommandLine, RunConfig, build_run_config
from bench.harness.runner import CaseRunner
from bench.sources import records as rec_mod
from bench.sources.locks import RunLock
from bench.studies.cases import Case
from reports.numbers import fmt_num
from reports.records import Record


@dataclass
class Finish:
    """What the end of a session produced: the law's fit, gate verdicts and written files."""

    fit: object = None  # bench.harness.law_fit.LawFit, or None when nothing was fitted
    verdicts: list = field(default_factory=list)
    files: dict = field(default_factory=dict)
    usage_error: str | None = None

    @property
    def failed_gates(self) -> list:
        return [v for v in self.verdicts if not v.passed]


@dataclass
class CaseOutcome:
    case: Case | None  # None for an outcome reported by an xdist worker (the controller has ids only)
    record: Record
    resumed: bool = False
    stale: str | None = None  # why a stored record was not reused, when one existed


@dataclass(frozen=True)
class Stored:
    """What `--resume` found for a case: a reusable record, or why there is none."""

    record: Record | None
    reason: str | None  # None: nothing stored; otherwise why the stored record is not reused


@dataclass
class BenchSession:
    cli: CommandLine
    env: RunEnv = field(default_factory=RunEnv.make)
    outcomes: list[CaseOutcome] = field(default_factory=list)
    finished: Finish | None = None
    selected: list[Case] | None = None  # the cases this run will execute (after -k), if known
    problems: list[str] = field(default_factory=list)  # unusable records met by the report step
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    argv: list[str] = field(default_factory=list)  # the command line of the run, for the records
    _config: RunConfig | None = None
    _results_dir: Path | None = None
    _runner: CaseRunner | None = None
    _prepared: bool = False
    _provenance: dict = field(default_factory=dict)
    _lock: RunLock | None = None

    # ------------------------------------------------------------------ setup

    @property
    def config(self) -> RunConfig:
        """The run's configuration, built (and the study read) on first use."""
        if self._config is None:
            self._config = build_run_config(self.cli)
        return self._config

    def cases(self) -> list[Case]:
        return list(self.config.cases)

    @property
    def results_dir(self) -> Path:
        """Created and checked on first use, so `pytest tests` never touches it."""
        if self._results_dir is None:
            self._results_dir = rec_mod.resolve_results_dir(self.env.results_dir)
        return self._results_dir

    @property
    def runner(self) -> CaseRunner:
        if self._runner is None:
            if self.cli.threads is not None:
                import torch

                torch.set_num_threads(self.cli.threads)
            self._runner = CaseRunner(replace(self.env, results_dir=self.results_dir), resume=self.cli.resume)
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
        elif self.env.device in (None, "cuda"):
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
            self._provenance[case.id] = case_provenance(case, self.env)
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
        if rec.status != "ok":
            return Stored(None, f"status {rec.status}")
        if rec.fingerprint != case.fingerprint():
            return Stored(None, f"config {rec.fingerprint} -> {case.fingerprint()}")
        reasons = stale_reasons(rec.provenance, self.provenance(case))
        if reasons:
            return Stored(None, "; ".join(reasons))
        return Stored(rec, None)

    def stored(self, case: Case) -> Record | None:
        """The stored record of `case` when `--resume` may reuse it."""
        return self.check_stored(case).record

    def run_case(self, case: Case) -> Record:
        """Run (or resume) one case, write its record, and remember it for the summary."""
        stale = None
        if self.cli.resume:
            found = self.check_stored(case)
            if found.record is not None:
                self.outcomes.append(CaseOutcome(case, found.record, resumed=True))
                return found.record
            stale = found.reason
            if stale is not None:
                self.env.progress.note(f"{case.id}: stored record is stale ({stale}); running it again")
        _ = self.results_dir  # fail on an unwritable directory before spending compute
        self.prepare(case)
        provenance = self.provenance(case)
        made = self.runner.run(case, provenance=provenance)
        rec = replace(made, provenance=provenance, invocation={"argv": self.argv, "run_id": self.run_id},
                      # What --resume compared and why it ran the case again, for the user to inspect.
                      resume={"rerun_because": stale} if stale is not None else None, **rec_mod.stamp())
        rec_mod.write_record(self.results_dir, rec)
        self.runner.case_done(case)  # the record is written: its training state is no longer needed
        self.outcomes.append(CaseOutcome(case, rec, stale=stale))
        if rec.status == "diverged":
            # The record keeps the trajectory up to the divergence; the case still fails.
            from bench.training.recipe import Diverged

            div = rec.posttrain.divergence or {}
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
        from bench.errors import USER_ERRORS, one_line
        from bench.harness.group_fit import FitConfig
        from bench.harness.law_fit import fit_law

        fin = Finish()
        self.finished = fin
        if not self.outcomes:
            return fin
        config = self.config
        records = rec_mod.load_records(self.results_dir, problems=self.problems)
        try:
            fit = fit_law(records, FitConfig(law=config.law, holdout=config.holdout))
            fin.fit = fit if fit.groups else None
            targets = {"fit": fin.fit, "run": [o.record for o in self.outcomes], "stored": records}
            for gate in config.gates.all():
                fin.verdicts.append(gate.check(targets[gate.needs]))
        except USER_ERRORS as exc:
            fin.usage_error = one_line(exc)
        if config.report:
            from reports.render import write_report

            fin.files = write_report(records, fin.fit.to_dict() if fin.fit is not None else None,
                                     [v.to_dict() for v in fin.verdicts], self.results_dir)
        return fin

    # ------------------------------------------------------------------ xdist

    @staticmethod
    def outcome_summary(outcome: CaseOutcome) -> dict:
        """What an xdist worker tells its controller about one case (plain JSON)."""
        return {"case_id": outcome.record.case_id, "resumed": outcome.resumed, "stale": outcome.stale}

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
        # Study order, whichever worker finished first: the summary reads the same every run.
        order = {c.id: i for i, c in enumerate(self.cases())}
        self.outcomes.sort(key=lambda o: order.get(o.record.case_id, len(order)))

    def preflight(self, cases: list[Case], collect_only: bool = False) -> list:
        """Before any case runs: hub models resolve and every case fits its device (`bench.harness.preflight`).

        Cases `--resume` will reuse are not checked: they load nothing.
        """
        from bench.harness.preflight import check_cases

        if self.cli.resume:
            cases = [c for c in cases if self.stored(c) is None]
        return check_cases(cases, self.env, resolve_models=not collect_only)

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
                   if c is first or not (self.cli.resume and self.stored(c) is not None)]
        self.runner.prepare(pending)

    # ------------------------------------------------------------------ summary

    def summary_rows(self) -> list[list]:
        rows = []
        for out in self.outcomes:
            r = out.record
            ppl = "  ".join(f"{k}={fmt_num(v.ppl)}" for k, v in sorted((r.ppl or {}).items()))
            params = f"{r.params.after:,}/{r.params.before:,}" if r.params is not None else "–"
            rows.append([r.case_id, r.name, params, ppl, r.status,
                         "resumed" if out.resumed else f"{(r.timings or {}).get('case_s', 0):.1f}s"])
        return rows

    def summary_lines(self) -> list[str]:
        from tabulate import tabulate

        if not self.outcomes:
            return []
        table = tabulate(self.summary_rows(), headers=["case", "method", "params after/before",
                                                       "ppl ↓", "status", "time"], tablefmt="github")
        lines = [f"prunebench: {len(self.outcomes)} record(s) in {self.results_dir / 'records'}", *table.splitlines()]
        lines += [f"stale: {o.record.case_id}: {o.stale} (ran again)" for o in self.outcomes if o.stale]
        fin = self.finished
        if fin is not None:
            if fin.fit is not None:
                # A run-away or unidentified fit is named as such, never printed as a measurement.
                lines += [f"law {self.config.law}: extrapolation to {line}" for line in fin.fit.heldout_lines()]
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
