"""Study files: each mistake is one line naming the file and the key (DESIGN.md section 2)."""

from __future__ import annotations

import pytest

from bench.cli import main
from bench.errors import UsageError
from bench.studies import load_study, study_cases

BASE = """
[study]
name = "t"

[[models]]
spec = "tiny-llama"
key = "a"

[[models]]
spec = "tiny-qwen2"
key = "b"

[[methods]]
method = "dense"

[[methods]]
method = "depth"
ratios = [0.25]

[calibration]
source = "wikitext2"
samples = 4
seq_len = 32

[evaluation]
datasets = ["ptb"]
seq_lens = [64]
max_windows = 2
"""


def write(tmp_path, text: str, name: str = "s.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def fails(tmp_path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(UsageError) as exc:
        study_cases(load_study(str(path)))
    message = str(exc.value)
    assert "\n" not in message and str(path) in message
    return message


def test_base_study_expands_in_model_method_order(tmp_path):
    cases = study_cases(load_study(str(write(tmp_path, BASE))))
    assert [c.id for c in cases] == ["t-a-dense", "t-a-depth-0.25", "t-b-dense", "t-b-depth-0.25"]
    depth = cases[1]
    assert depth.config()["prune"] == {"calibration": "wikitext2", "samples": 4, "calib_seq_len": 32}
    assert (depth.calibration.source, depth.calibration.samples, depth.calibration.seq_len) == ("wikitext2", 4, 32)
    assert depth.prune.ratio == 0.25 and type(depth.prune).__name__ == "DepthConfig"
    assert cases[0].prune is None and depth.evals[0].max_windows == 2 and depth.family == "a"
    assert study_cases(load_study(str(write(tmp_path, BASE))), full_eval=True)[1].evals[0].max_windows is None


@pytest.mark.parametrize("edit,expected", [
    (("[evaluation]", "[evaluations]"), "evaluations: unknown key (did you mean 'evaluation'?)"),
    (("max_windows = 2", "max_window = 2"), "evaluation.max_window: unknown key (did you mean 'max_windows'?)"),
    (('method = "depth"', 'method = "dept"'), "methods[1].method: unknown method 'dept' (did you mean 'depth'?)"),
    (("ratios = [0.25]", "ratio = [0.25]"), "methods[1].ratio: unknown key (did you mean 'ratios'?)"),
    (("samples = 4", 'samples = "many"'), "calibration.samples: must be an integer >= 1, got 'many'"),
    (('key = "a"', "key = 3"), "models[0].key: must be a string, got 3"),
    (("ratios = [0.25]", "ratios = [1.0]"), "methods[1] (depth).ratios: ratio 1.0 is outside (0, 1)"),
    (("ratios = [0.25]", "ratios = [-0.1]"), "methods[1] (depth).ratios: ratio -0.1 is outside (0, 1)"),
    (("ratios = [0.25]", "ratios = [0.25, 0.25]"), "methods[1] (depth).ratios: repeats a ratio"),
    (("ratios = [0.25]", 'ratios = { a = [0.25], c = [0.5] }'), "methods[1] (depth).ratios.c: is not a model key"),
    (("ratios = [0.25]", 'ratios = [0.25]\noptions = { variant = "blocks" }'),
     "methods[1] (depth).options: unknown depth variant 'blocks' (did you mean 'block'?)"),
    (("ratios = [0.25]", "ratios = [0.25]\noptions = { batchsize = 2 }"),
     "method 'depth' has no option 'batchsize' (did you mean 'batch_size'?)"),
    (("ratios = [0.25]", "ratios = [0.25]\noptions = { seed = 2 }"),
     "methods[1] (depth).options.seed: is a calibration field"),
    (('datasets = ["ptb"]', 'datasets = ["ptbb"]'), "evaluation.datasets: unknown dataset 'ptbb' (did you mean 'ptb'?)"),
    (("max_windows = 2", "max_windows = { 128 = 2 }"), "evaluation.max_windows.128: is not one of seq_lens [64]"),
    (("seq_lens = [64]", "seq_lens = [1]"), "evaluation.seq_lens: must be an integer >= 2, got 1"),
    (('source = "wikitext2"', 'source = "wiki"'), "calibration: unknown calibration source 'wiki'"),
    (('key = "a"', 'key = "a"\nrevision = "main"'),
     "models[0].revision: pins a hub revision, but spec 'tiny-llama' is not a hub id (org/name)"),
    (('key = "a"', 'key = "a"\nrevision = 7'), "models[0].revision: must be a non-empty string, got 7"),
    (('key = "b"', 'key = "a"'), "models[1].key: 'a' is also the key of models[0]"),
    (('key = "b"', 'key = "b"\noptions = { dept = { variant = "block" } }'),
     "models[1].options.dept: no [[methods]] entry uses method 'dept' (did you mean 'depth'?)"),
    (('key = "b"', 'key = "b"\noptions = { depth = { variant = "blocks" } }'),
     "methods[1] (depth).options with models[1].options.depth: unknown depth variant 'blocks' (did you mean 'block'?)"),
    (('name = "t"', 'name = "t"\nholdout = ["a"]'), "study.holdout: holds out sizes for the law's extrapolation, but the study has no [posttrain]"),
    (('name = "t"', 'name = "t"\nlaw = "chinchila"'), "study.law: unknown law 'chinchila' (did you mean 'chinchilla'?)"),
    (("[calibration]", "[gates]\nmax_control_improvement = \"lots\"\n[calibration]"), "gates:"),
])
def test_mistakes_name_the_file_and_the_key(tmp_path, edit, expected):
    assert edit[0] in BASE
    assert expected in fails(tmp_path, BASE.replace(*edit, 1))


def test_two_cases_with_one_id_name_both_entries(tmp_path):
    text = BASE + '\n[[methods]]\nmethod = "width"\nlabel = "depth"\nratios = [0.25]\n'
    message = fails(tmp_path, text)
    assert "models[0] x methods[1] (depth) and models[0] x methods[2] (width) both make case 't-a-depth-0.25'" in message


def test_method_needing_calibration_without_any(tmp_path):
    text = BASE.replace('[calibration]\nsource = "wikitext2"\nsamples = 4\nseq_len = 32\n', "")
    assert "methods[1] (depth): needs calibration data" in fails(tmp_path, text)


def test_nm_ratio_must_match_the_pattern(tmp_path):
    text = BASE + '\n[[methods]]\nmethod = "nm"\nratios = [0.6]\noptions = { n = 2, m = 4 }\n'
    assert "contradicts 2:4, whose sparsity is 0.5" in fails(tmp_path, text)


def test_posttrain_values_are_checked_for_every_model_override(tmp_path):
    recipe = "\n[posttrain]\ntokens = 1024\ncheckpoint_every = 256\nbatch_tokens = 256\nmicro_batch_tokens = 256\nseq_len = 32\n"
    assert study_cases(load_study(str(write(tmp_path, BASE + recipe))))[0].recipe.tokens == 1024
    bad = BASE.replace('key = "b"', 'key = "b"\nposttrain = { tokens = 1000 }') + recipe
    assert "models[1].posttrain: post-training tokens (1000) must be a multiple of checkpoint_every (256)" in fails(tmp_path, bad)
    assert "unknown post-training option 'lrr' (did you mean 'lr'?)" in fails(tmp_path, BASE + recipe + "lrr = 1e-3\n")


def test_zeroshot_limits_are_checked(tmp_path):
    text = BASE + '\n[zeroshot]\ntasks = ["wikitext"]\nlimits = { wikitext_lastword = 3 }\n'
    assert "zeroshot: a limit is given for 'wikitext_lastword'" in fails(tmp_path, text)


def test_invalid_toml_names_the_file(tmp_path):
    assert "is not valid TOML" in fails(tmp_path, BASE + "\n[[methods]\n")


def test_include_merges_tables_and_never_inherits_the_name(tmp_path):
    write(tmp_path, BASE, "base.toml")
    child = write(tmp_path, 'include = "base.toml"\n[evaluation]\nmax_windows = 5\n', "child.toml")
    cases = study_cases(load_study(str(child)))
    assert [c.id for c in cases][:2] == ["child-a-dense", "child-a-depth-0.25"]
    assert cases[0].evals[0].max_windows == 5 and cases[0].evals[0].dataset == "ptb"
    loop = write(tmp_path, 'include = "loop.toml"\n', "loop.toml")
    with pytest.raises(UsageError, match="includes itself"):
        load_study(str(loop))


def test_builtin_study_includes_resolve_by_name():
    qwen = load_study("nano-qwen2")
    assert qwen.name == "nano-qwen2" and {m.family for m in qwen.models} == {"nano-qwen2"}
    assert [m.label for m in qwen.methods] == [m.label for m in load_study("nano").methods]


def test_unknown_study_name_suggests_a_builtin():
    with pytest.raises(UsageError, match="did you mean 'paper'"):
        load_study("papr")


def test_cli_bad_study_exits_2_with_one_line(tmp_path, capsys):
    path = write(tmp_path, BASE.replace("max_windows = 2", "max_windows = 0"))
    assert main(["studies", "expand", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"study {path}: evaluation.max_windows: must be an integer >= 1, got 0" in err


def test_cli_expand_counts_tiny_models_and_says_when_a_config_is_missing(tmp_path, capsys):
    text = BASE + '\n[[models]]\nspec = "someorg/missing-model"\nkey = "m"\n'
    assert main(["studies", "expand", str(write(tmp_path, text))]) == 0
    out = capsys.readouterr().out
    assert "| t-a-dense " in out and "no config for someorg/missing-model" in out and "--configs DIR" in out
    from bench.sources.tiny import tiny_model

    n = sum(p.numel() for p in tiny_model("llama").parameters())
    assert f"| {n:,} " in out  # the tiny model's real count, from its config on the meta device


def test_a_revision_pins_the_hub_spec_of_every_case(tmp_path):
    sha = "3f1c0d2e4b5a69788796a5b4c3d2e1f0a9b8c7d6"
    text = BASE.replace('spec = "tiny-llama"\nkey = "a"', f'spec = "org/Model-1B"\nrevision = "{sha}"')
    assert text != BASE
    cases = study_cases(load_study(str(write(tmp_path, text))))
    assert {c.model for c in cases if c.id.startswith("t-model-1b")} == {f"org/Model-1B@{sha}"}
    twice = text.replace('spec = "org/Model-1B"', 'spec = "org/Model-1B@main"')
    assert "already pins revision main" in fails(tmp_path, twice)
