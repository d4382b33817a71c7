"""`prunebench report`: re-render from stored records; mixed recipes give separate groups and plots."""

from __future__ import annotations

import json

from bench.cli import main
from bench.sources.records import write_record
from synthetic_records import LORA_RECIPE, synthetic_records


def _reject_non_json(name):
    raise AssertionError(f"fit.json holds {name}, which strict JSON parsers refuse")


def test_strict_json_turns_non_finite_numbers_into_null():
    import math

    import numpy as np
    from reports.render import strict_json

    data = {"interval": [0.5, math.inf], "r2": float("nan"), "f32": np.float32("-inf"), "ok": np.float64(2.5),
            "n": 3, "flag": True, "nested": ({"x": -math.inf},)}
    out = strict_json(data)
    assert out == {"interval": [0.5, None], "r2": None, "f32": None, "ok": 2.5, "n": 3, "flag": True,
                   "nested": [{"x": None}]}
    json.dumps(out, allow_nan=False, default=float)  # raises if anything non-finite is left


def test_mixed_recipes_render_separate_groups_and_plots(tmp_path, capsys):
    for rec in synthetic_records(noise=0.001, nm=False) + synthetic_records(noise=0.001, nm=False, recipe=LORA_RECIPE,
                                                                             profile="synth-lora"):
        write_record(tmp_path, rec)
    out = tmp_path / "out"
    assert main(["report", "--results-dir", str(tmp_path), "--out", str(out), "--bootstrap", "3", "--check-search"]) == 0
    fit = json.loads((out / "fit.json").read_text(), parse_constant=_reject_non_json)
    assert fit["schema"] == "prunebench.fit/2" and len(fit["groups"]) == 2
    recipes = {g["recipe"] for g in fit["groups"]}
    assert {r.split("-")[0] for r in recipes} == {"full", "lora"}
    pngs = sorted(p.name for p in out.glob("loss_*.png"))
    assert pngs == sorted(f"loss_synth-llama_depth_{r}.png" for r in recipes)
    report = (out / "report.md").read_text()
    assert "- `lora-" in report and "LoRA r=8, lr 0.005 constant" in report and "full, lr 0.0005 constant" in report
    assert fit["groups"][0]["bootstrap"]["n"] == 3
    assert all(g["search"]["coarse_reaches_full"] for g in fit["groups"])
    assert "The full grid, tried once per group, found no better optimum." in report


def test_bad_bootstrap_and_missing_dir(tmp_path, capsys):
    write_record(tmp_path, synthetic_records()[0])
    assert main(["report", "--results-dir", str(tmp_path), "--bootstrap", "-1"]) == 2
    assert "--bootstrap must be >= 0" in capsys.readouterr().err
    assert main(["report", "--results-dir", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_control_column_is_keyed_by_family_size_and_recipe():
    """nano-llama s1 and nano-qwen2 s1 (and a LoRA recipe of the first) each show their own control."""
    from reports.markdown import posttrain_table
    from synthetic_records import SIZES, control_record

    recs = []
    for family, recipe, profile, figure in (("fam-a", None, "synth", 0.001), ("fam-b", None, "synth-b", 0.004),
                                            ("fam-a", LORA_RECIPE, "synth-lora", 0.009)):
        recs += [r for r in synthetic_records(family=family, recipe=recipe, profile=profile, nm=False)
                 if r.model.key == "s1" and abs(r.ratio - 0.25) < 1e-9]
        recs.append(control_record("s1", SIZES[0], family=family, recipe=recipe, profile=profile, improvement=figure))
    rows = [line for line in posttrain_table(recs).splitlines() if "| depth" in line]
    by = {(line.split("|")[1].strip(), line.split("|")[3].strip()[:4]): line for line in rows}
    assert len(by) == 3
    assert "| 0.10%" in by[("fam-a s1", "full")] and "| 0.40%" in by[("fam-b s1", "full")]
    assert "| 0.90%" in by[("fam-a s1", "lora")]
