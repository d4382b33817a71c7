"""A new pruning method is one module: tests/toy_method.py, found by an entry point or
$PRUNEBENCH_PLUGINS, runs through `prunebench prune` and a study file with no other file
knowing it; duplicates and broken plugins are one-line errors.

In process: `clean_registry` runs discovery afresh, as a new process would.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from bench.errors import UsageError
from pruners.errors import PrunerError
from bench import registry
from pruners import registry as declarations
from plugin_helpers import BenchmarkStandIn, case_runner, collection_finish, configured, session_finish, session_of

TESTS = Path(__file__).resolve().parents[1]  # where toy_method.py is


def dist_with_entry_point(root: Path, name: str, module: str) -> Path:
    """An installed-distribution stub: what `pip install` of a plugin package leaves on sys.path."""
    info = root / "toy_plugin-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[{registry.ENTRY_POINT_GROUP}]\n{name} = {module}\n")
    return root


@pytest.fixture
def clean_registry(monkeypatch):
    """Run discovery afresh in this process and put the registry back afterwards.

    The built-ins register when their modules are first imported, which happens once per
    process, so the snapshot is taken after a full discovery and restored whole.
    """
    registry.known_methods()
    monkeypatch.delenv(registry.PLUGINS_ENV, raising=False)
    with registry.METHODS.scratch():
        registry.METHODS.rediscover()
        yield
    for name in [m for m in sys.modules if m in ("toy_method", "dup_depth")]:
        del sys.modules[name]


def test_cli_runs_the_entry_point_method(clean_registry, data_dir, monkeypatch, capsys, tmp_path):
    """`prunebench prune` (bench.cli.main, what the console script calls) finds `toy` through the
    entry point of an installed distribution: discovery runs afresh, as in a new process."""
    from bench.cli import main

    monkeypatch.syspath_prepend(str(TESTS))
    monkeypatch.syspath_prepend(str(dist_with_entry_point(tmp_path / "site", "toy", "toy_method")))
    monkeypatch.setenv("PRUNEBENCH_DATA_DIR", str(data_dir))
    code = main(["prune", "--model", "tiny-llama", "--method", "toy", "--ratio", "0.5", "--projection", "up_proj",
                 "--score", "activation", "--calibration", "wikitext2", "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    record = json.loads(out.out)
    assert registry.METHODS["toy"].module == "toy_method"  # registered by the entry point, not $PRUNEBENCH_PLUGINS
    assert record["method"] == "toy" and record["config"]["projection"] == "up_proj"
    # The calibration shape is the one ToyConfig declares (4 x 32), not the CLI's or another method's.
    assert (record["calibration"]["samples"], record["calibration"]["seq_len"]) == (4, 32)
    assert record["keeps_masks"] is True
    # Every up_proj row (intermediate x hidden) loses int(0.5 * hidden) weights.
    from bench.sources.models import load_model

    cfg = load_model("tiny-llama").model.config
    zeroed = cfg.num_hidden_layers * cfg.intermediate_size * int(0.5 * cfg.hidden_size)
    assert record["params_before"] - record["params_after"] == zeroed == record["removed"]["zeroed_weights"]


def test_generated_flags_in_process(clean_registry, monkeypatch, capsys):
    """--help shows the method's own group; a flag of another method, or a broken plugin, is one line."""
    from bench.cli import main

    monkeypatch.syspath_prepend(str(TESTS))
    monkeypatch.setenv(registry.PLUGINS_ENV, "toy_method")
    with pytest.raises(SystemExit):
        main(["prune", "--help"])
    help_text = capsys.readouterr().out
    assert "--method toy:" in help_text and "--projection PROJECTION" in help_text and "--no-hold-zeros" in help_text
    assert "one of blockwise, depth, nm, toy, width" in help_text
    assert main(["prune", "--model", "tiny-llama", "--method", "depth", "--ratio", "0.3",
                 "--projection", "up_proj"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.splitlines() == ["prunebench: error: --projection applies to toy pruning, not depth; "
                                              "drop it"]
    assert main(["prune", "--model", "tiny-llama", "--method", "toy", "--ratio", "0.3", "--batch-size", "2"]) == 2
    assert "--batch-size applies to depth/nm/width pruning, not toy" in capsys.readouterr().err

    registry.METHODS.rediscover()
    monkeypatch.setenv(registry.PLUGINS_ENV, "no_such_plugin_module")
    with pytest.raises(SystemExit) as exc:
        main(["prune", "--model", "tiny-llama", "--method", "depth", "--ratio", "0.3"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and len(lines) == 1
    assert "PRUNEBENCH_PLUGINS names module 'no_such_plugin_module'" in lines[0]


def test_environment_variable_plugin_registers_and_reruns(clean_registry, monkeypatch):
    monkeypatch.syspath_prepend(str(TESTS))
    monkeypatch.setenv(registry.PLUGINS_ENV, " toy_method , ")
    assert "toy" in registry.known_methods()
    m = registry.get_method("toy")
    assert m.calibration_shape == (4, 32) and m.module == "toy_method"
    assert [o.name for o in m.options] == ["ratio", "projection", "score", "hold_zeros"]
    assert declarations.needs_calibration(registry.make_config("toy", ratio=0.5, score="activation"))
    assert not declarations.needs_calibration(registry.make_config("toy", ratio=0.5))
    with pytest.raises(PrunerError, match="did you mean 'toy'"):
        registry.get_method("tyo")
    with pytest.raises(PrunerError, match=r"option 'projection' must be a string, got 3"):
        registry.make_config("toy", ratio=0.5, projection=3)  # a study file's wrong type
    with pytest.raises(PrunerError, match=r"no option 'projector' \(did you mean 'projection'"):
        registry.make_config("toy", ratio=0.5, projector="up_proj")


def test_duplicate_name_is_refused(clean_registry, monkeypatch, tmp_path):
    (tmp_path / "dup_depth.py").write_text(
        "from dataclasses import dataclass\n"
        "from pruners.options import option\n"
        "from pruners.registry import register\n\n"
        "@dataclass\nclass C:\n    ratio: float = option(0.1, 'ratio')\n\n"
        "@register('depth', C)\ndef prune(model, calibration, config):\n    '''Not the real depth.'''\n")
    site = dist_with_entry_point(tmp_path / "site", "depth", "dup_depth")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.syspath_prepend(str(site))
    with pytest.raises(PrunerError, match="'depth' of dup_depth is already registered by pruners.depth"):
        registry.known_methods()
    sys.path.remove(str(site))  # the clashing plugin uninstalled: the next lookup discovers again
    assert registry.METHODS["depth"].module == "pruners.depth"  # the built-in stays


def test_entry_point_must_register_its_own_name(clean_registry, monkeypatch, tmp_path):
    site = dist_with_entry_point(tmp_path / "site", "toy2", "toy_method")
    monkeypatch.syspath_prepend(str(TESTS))
    monkeypatch.syspath_prepend(str(site))
    with pytest.raises(PrunerError, match="registered no pruning method named 'toy2'"):
        registry.known_methods()


def test_config_without_help_or_ratio_is_refused():
    from dataclasses import dataclass, field

    @dataclass
    class NoHelp:
        ratio: float = field(default=0.1)

    @dataclass
    class NoRatio:
        keep: float = field(default=0.1, metadata={"help": "kept"})

    with pytest.raises(TypeError, match="NoHelp.ratio has no help text"):
        declarations.register("nohelp", NoHelp)
    with pytest.raises(TypeError, match="needs a 'ratio' field"):
        declarations.register("noratio", NoRatio)
    assert "nohelp" not in registry.known_methods() and "noratio" not in registry.known_methods()


TOY_STUDY = """
[study]
name = "plug"

[[models]]
spec = "tiny-llama"
key = "tl"
family = "tiny"

[[methods]]
method = "toy"
ratios = [0.5]
options = { projection = "down_proj", score = "activation" }

[calibration]
source = "wikitext2"
samples = 2
seq_len = 32

[posttrain]
tokens = 512
checkpoint_every = 256
batch_tokens = 128
micro_batch_tokens = 128
seq_len = 32
eval_windows = 2
max_documents = 40
lr = 1e-3

[evaluation]
datasets = ["ptb"]
seq_lens = [32]
max_windows = 2
"""


def test_study_file_runs_the_plugin_method(clean_registry, data_dir, monkeypatch, tmp_path):
    """`pytest bench --study plug.toml` with $PRUNEBENCH_PLUGINS naming the module (in process,
    `plugin_helpers`): the study, the runner and post-training reach `toy` by its name alone."""
    from bench import test_matrix

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv(registry.PLUGINS_ENV, "toy_method")
    monkeypatch.syspath_prepend(str(TESTS))
    (tmp_path / "plug.toml").write_text(TOY_STUDY)
    results = tmp_path / "r"
    with configured("--study", str(tmp_path / "plug.toml"), f"--results-dir={results}", f"--data-dir={data_dir}",
                    f"--cache-dir={tmp_path / 'cache'}") as config:
        (case,) = session_of(config).cases()
        collection_finish(config, [case])
        test_matrix.test_case(case, case_runner(config)[0], session_of(config), BenchmarkStandIn())
        assert session_finish(config) == pytest.ExitCode.OK
    record = json.loads((results / "records" / "plug-tl-toy-0.5.json").read_text())
    assert record["method"] == "toy" and record["config"]["prune"]["projection"] == "down_proj"
    assert record["prune_report"]["calibration"]["samples"] == 2  # the study's [calibration], drawn
    pt = record["posttrain"]
    # The report declared masks to keep; post-training held them: no zeroed weight came back.
    assert pt["masks_kept"] is True and pt["mask_violations"] == 0
    assert record["params"]["after"] < record["params"]["before"]
    assert record["params"]["non_embedding_before"] - record["params"]["non_embedding_after"] == \
        record["prune_report"]["removed"]["zeroed_weights"]


def test_study_file_keys_are_the_config_fields(clean_registry, monkeypatch, tmp_path):
    """A study names the plugin's fields as options; a wrong key or type is one line naming it."""
    from bench.studies.schema import load_study

    monkeypatch.syspath_prepend(str(TESTS))
    monkeypatch.setenv(registry.PLUGINS_ENV, "toy_method")
    path = tmp_path / "plug.toml"
    path.write_text(TOY_STUDY.replace('projection = "down_proj"', 'projektion = "down_proj"'))
    with pytest.raises(UsageError, match=r"methods\[0\] \(toy\)\.options: .*no option 'projektion' "
                                         r"\(did you mean 'projection'"):
        load_study(path)
    path.write_text(TOY_STUDY.replace('projection = "down_proj"', "hold_zeros = 1"))
    with pytest.raises(UsageError, match="option 'hold_zeros' must be true or false, got 1"):
        load_study(path)
    # Without a [calibration] table the study is refused: the toy config says activation scoring needs data.
    path.write_text(TOY_STUDY.split("[calibration]")[0])
    with pytest.raises(UsageError, match=r"methods\[0\] \(toy\): needs calibration data"):
        load_study(path)
