"""Regenerate the golden report inputs from a real smoke run, then the golden report from them.

    python tests/golden/regenerate.py --data-dir ../shared/data            # runs the smoke profile
    python tests/golden/regenerate.py --from-results /tmp/smoke-golden     # reuses its records

The smoke run is `pytest bench --profile smoke` in a subprocess (two tiny zoo bases built by
the suite, 8 cases, a few minutes on 2 cores). Its records are read back, their volatile
fields (times, timestamps, machine, paths, commit) are replaced by fixed values so the file
only changes when results do, and they are written to `inputs.json` together with the study
fitted on them and the verdict of a law gate. `report.md` and `seed_table.md` are then
rendered from `inputs.json` exactly as `tests/unit/test_report_golden.py` renders them.
Review the diff of all three before committing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO))

#: Keys whose values change from run to run without the results changing (wall times,
#: throughputs, timestamps, host, paths of caches, the commit that ran it).
VOLATILE = {
    "created", "machine", "timings", "wall_s", "train_s", "tokens_per_s", "wall_time_s", "pretrain_wall_s",
    "peak_memory_bytes", "case_s", "posttrain_s", "prune_s", "path", "zoo_dir", "rebuilt_because",
    "commit", "dirty", "diff_digest", "argv", "run_id", "hostname", "versions", "stale", "resumed_from",
}
#: What a volatile value becomes: a fixed placeholder of the same JSON kind.
PLACEHOLDER = "normalised"
#: The gate whose verdict the golden report shows: the README's kind of scoped gate.
GATE = "larger-n0:depth=5%"
#: Replicates of the golden study (the smoke groups have one fitted run, so the bootstrap
#: cannot run and the verdicts say so; the figure is here for when that changes).
BOOTSTRAP = 20
SMOKE_COMMAND = ["-m", "pytest", "bench", "-p", "no:cacheprovider", "-q", "--profile", "smoke", "--threads", "1"]


def normalise(obj, key: str | None = None):
    """A copy of `obj` with every VOLATILE key's value replaced by a placeholder."""
    if key in VOLATILE:
        if isinstance(obj, (int, float)) and not isinstance(obj, bool):
            return 0
        return PLACEHOLDER if obj is not None else None
    if isinstance(obj, dict):
        return {k: normalise(v, k) for k, v in obj.items()}
    if isinstance(obj, list):
        return [normalise(v) for v in obj]
    return obj


def smoke_run(results: Path, cache: Path, data_dir: str) -> None:
    """Run the smoke profile into `results` (raises on a failing run)."""
    env = {**os.environ, "PRUNEBENCH_DATA_DIR": data_dir, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    cmd = [sys.executable, *SMOKE_COMMAND, f"--results-dir={results}", f"--cache-dir={cache}"]
    print("running:", " ".join(cmd[1:]), flush=True)
    run = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)
    if run.returncode != 0:
        raise SystemExit(f"smoke run failed (exit {run.returncode}):\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}")


def build_inputs(results: Path) -> dict:
    """Records of `results`, normalised, with the study and the gate verdict computed from them."""
    from bench.sources.records import load_records

    records = [normalise(r.to_json()) for r in load_records(results)]
    if not records:
        raise SystemExit(f"{results} holds no records")
    return inputs_from_records(records)


def inputs_from_records(records: list[dict]) -> dict:
    """The law's fit and the gate verdict computed from normalised records."""
    from bench.harness.group_fit import FitConfig
    from bench.harness.law_fit import fit_law
    from bench.studies.gates import parse_law_scope
    from reports.records import Record

    law = fit_law([Record.from_json(r) for r in records], FitConfig(bootstrap=BOOTSTRAP))
    verdict = parse_law_scope(GATE).check(law).to_dict()
    fit = json.loads(json.dumps(law.to_dict(), default=float))
    return {"source": {"command": "python " + " ".join(SMOKE_COMMAND), "profile": "smoke",
                       "normalised": sorted(VOLATILE), "gate": GATE, "bootstrap": BOOTSTRAP},
            "records": records, "fit": fit, "verdicts": [verdict]}


def render(inputs: dict) -> dict[str, str]:
    """The golden texts, rendered from inputs.json as the golden test renders them."""
    from reports.markdown import render_report
    from reports.record_tables import seed_tables
    from reports.records import Record

    records = [Record.from_json(r) for r in inputs["records"]]
    plots = sorted(f"loss_{g['family']}_{g['method']}.png" for g in inputs["fit"]["groups"])
    return {"report.md": render_report(records, inputs["fit"], inputs["verdicts"], plots),
            "seed_table.md": seed_tables(records)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = p.add_mutually_exclusive_group()
    src.add_argument("--from-results", metavar="DIR", help="reuse the records of an earlier smoke run")
    p.add_argument("--data-dir", default=os.environ.get("PRUNEBENCH_DATA_DIR"),
                   help="data directory for the smoke run (default $PRUNEBENCH_DATA_DIR)")
    p.add_argument("--render-only", action="store_true", help="re-render report.md from the existing inputs.json")
    src.add_argument("--refit", action="store_true",
                     help="keep inputs.json's records, fit the study on them again (after a change to the fit)")
    args = p.parse_args(argv)
    if args.render_only:
        inputs = json.loads((HERE / "inputs.json").read_text())
    else:
        if args.refit:
            inputs = inputs_from_records(json.loads((HERE / "inputs.json").read_text())["records"])
        elif args.from_results:
            results = Path(args.from_results)
        else:
            if not args.data_dir:
                raise SystemExit("pass --data-dir (or set PRUNEBENCH_DATA_DIR) for the smoke run, or --from-results DIR")
            tmp = Path(tempfile.mkdtemp(prefix="prunebench-golden-"))
            results = tmp / "results"
            smoke_run(results, tmp / "cache", args.data_dir)
        if not args.refit:
            inputs = build_inputs(results)
        (HERE / "inputs.json").write_text(json.dumps(inputs, indent=1, sort_keys=True) + "\n")
        print(f"wrote {HERE / 'inputs.json'} ({len(inputs['records'])} records)")
        inputs = json.loads((HERE / "inputs.json").read_text())  # render what the test will read
    for name, text in render(inputs).items():
        (HERE / name).write_text(text)
        print(f"wrote {HERE / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
