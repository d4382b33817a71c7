"""Study files: the TOML schema, read with `tomllib` and validated into dataclasses.

A study declares a benchmark matrix as data (DESIGN.md section 2): which models, which
methods at which ratios, calibration, the post-training recipe, the evaluations, the law,
the held-out sizes and default gates. `parse_study` builds every section into the object the
code runs with (`bench.registry.make_config`, `bench.sources.calibration.CalibrationSpec`,
`bench.training.recipe.Recipe`, `bench.evaluation.zeroshot.ZeroShotSpec`,
`bench.studies.gates.GateSet`), once, so a mistake is one line naming the file and the key,
before any case spends compute. `bench.studies.expand` turns the validated study into
`bench.studies.cases.Case` values that carry those objects.

Layout (every table is optional except ``models`` and ``methods``)::

    include = "nano"              # a built-in study or a path (relative to this file): its
                                  # tables are merged under this file's; arrays replace
    [study]
    name = "my-study"             # first part of every case id (default: the file name)
    description = "..."
    law = "p2"                    # scaling law fitted at the end (--law overrides)
    holdout = ["l4"]              # size keys held out for extrapolation (--holdout overrides)
    seeds = 3                     # every case under seeds 0, 1, 2 (or a list: [0, 4, 7]); ids then end
                                  # in -s<seed>; a zoo is pre-trained again per seed (--seeds overrides)

    [[models]]                    # one entry per model ...
    spec = "meta-llama/Llama-3.2-1B"   # what `bench.sources.models.load_model` resolves
    revision = "<commit sha>"          # hub ids only: pin the revision (`bench.sources.hub`)
    key = "llama-3.2-1b"               # the size key in ids (may be "")
    family = "llama-3"                 # the law is fitted per family
    posttrain = { tokens = 1_000_000 } # this model's overrides of [posttrain]
    options = { blockwise = { layers = [4, 30] } }  # this model's method-option overrides
    [[models]]                    # ... or every size of a nano zoo family
    zoo = "nano-llama"

    [[methods]]
    method = "depth"              # a pruning method (`prunebench prune --help`), dense or control
    label = "depth"               # the method part of ids (default: method)
    ratios = [0.15, 0.25]         # or per model key: { "llama-3.2-1b" = [0.15], ... }; models a
                                  # per-model table leaves out get no case of this method
    options = { variant = "oneshot" }  # the method's config fields
    calibration = true            # true: [calibration]; false: none; or a table of its own;
                                  # default: [calibration] when the method needs data

    [calibration]                 # bench.sources.calibration.CalibrationSpec
    source = "c4"; samples = 128; seq_len = 2048; seed = 0

    [posttrain]                   # bench.training.recipe.Recipe fields (absent: no post-training)
    corpus = "wikitext2"; tokens = 131072; batch_tokens = 4096; lr = 5e-4; ...

    [evaluation]                  # perplexity: datasets x seq_lens
    datasets = ["wikitext2", "ptb"]
    seq_lens = [2048, 128]
    max_windows = { 2048 = 2, 128 = 32 }   # or one number; absent: every window
    per_case = true               # one case per measurement, id suffix <dataset>-<seq_len>

    [zeroshot]                    # bench.evaluation.zeroshot.ZeroShotSpec (lm-eval tasks)
    tasks = ["wikitext"]; limits = { wikitext = 1 }

    [gates]                       # defaults for the gate options (the CLI overrides each)
    max_extrapolation_error = ["5%"]; max_control_improvement = "1%"

Window caps and zero-shot limits are part of a study because they keep it inside its time
budget; ``--full-eval`` lifts them. Case options are what the file declares (validated, not
filled with defaults), so a case's fingerprint changes only when its file does.

``[posttrain] corpus`` names a corpus of `bench.training.corpus.CORPORA` (wikitext2, c4, slimpajama;
``corpus_dir`` names slimpajama's local directory, else ``$PRUNEBENCH_SLIMPAJAMA_DIR``, which
keeps machine paths out of a study). A model's ``revision`` pins a hub id's revision: the case's
model spec becomes ``org/name@revision``, which `bench.sources.hub` resolves and checks. Before any case
runs, each selected case's memory need is estimated from its config (`bench.harness.memory`).

The pieces: the validated dataclasses and table keys in `bench.studies.entries`, the value checks
in `bench.studies.checks`, the model and method axes in `bench.studies.axes`, the settings tables
in `bench.studies.sections`. This module finds, reads and merges study files and validates
them into a `Study`.
"""

from __future__ import annotations

from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser, as the tomli package
    import tomli as tomllib

from bench.errors import UsageError, did_you_mean
from bench.studies.axes import _methods, _models, parse_seeds
from bench.studies.checks import _pairs, _Where
from bench.studies.entries import STUDY_KEYS, TOP_KEYS, Study
from bench.studies.sections import _calibration, _evaluation, _gates, _posttrain, _zeroshot

BUILTIN_DIR = Path(__file__).resolve().parent
SUFFIX = ".toml"


def resolve_path(name_or_path: str | Path, relative_to: Path | None = None) -> Path:
    """A built-in study's file, or a study file path (relative paths from `relative_to`)."""
    text = str(name_or_path)
    builtin = BUILTIN_DIR / f"{text}{SUFFIX}"
    if "/" not in text and not text.endswith(SUFFIX) and builtin.is_file():
        return builtin
    path = Path(text).expanduser()
    if relative_to is not None and not path.is_absolute():
        path = relative_to / path
    if not path.is_file():
        names = builtin_names()
        raise UsageError(f"study {text!r} is neither a built-in study{did_you_mean(text, names)} "
                         f"({', '.join(names)}) nor a study file (no file {path})")
    return path


def builtin_names() -> list[str]:
    return sorted(p.stem for p in BUILTIN_DIR.glob(f"*{SUFFIX}"))


def read_toml(path: Path) -> dict:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except OSError as exc:
        raise UsageError(f"cannot read study file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"study {path} is not valid TOML: {exc}") from None


def merge(base: dict, top: dict) -> dict:
    """`top` over `base`: tables merge key by key, any other value (arrays too) replaces."""
    out = dict(base)
    for k, v in top.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def read_with_includes(path: Path, seen: tuple[Path, ...] = ()) -> dict:
    """The file's tables merged over those of the study it includes (recursively)."""
    raw = read_toml(path)
    where = _Where(path)
    if path in seen:
        raise where.error("include", f"includes itself through {' -> '.join(str(p) for p in seen)}")
    if "include" not in raw:
        return raw
    inc = resolve_path(where.string(raw.pop("include"), "include"), relative_to=path.parent)
    base = read_with_includes(inc, seen + (path,))
    study = dict(base.get("study", {}))
    study.pop("name", None)  # a study's name is its own: never inherited
    base["study"] = study
    return merge(base, raw)


def load_study(name_or_path: str | Path) -> Study:
    """Read, merge includes and validate a built-in study or a study file."""
    path = resolve_path(name_or_path)
    return parse_study(read_with_includes(path), path)


def parse_study(raw: dict, path: Path) -> Study:
    """Validate a study's merged tables (see the module docstring for the layout)."""
    w = _Where(path)
    w.keys(raw, TOP_KEYS, "")
    head = w.table(raw.get("study", {}), "study")
    w.keys(head, STUDY_KEYS, "study")
    name = w.string(head.get("name", path.stem), "study.name")
    if any(c.isspace() or c in "[]/" for c in name):
        raise w.error("study.name", f"{name!r} must not contain spaces, brackets or slashes (it starts every case id)")
    law = w.string(head.get("law", "p2"), "study.law")
    from fitting import available_laws

    if law not in available_laws():
        raise w.error("study.law", f"unknown law {law!r}{did_you_mean(law, available_laws())}; "
                                   f"choose one of {', '.join(available_laws())}")
    calibration = _calibration(w, raw["calibration"], "calibration") if "calibration" in raw else None
    if "models" not in raw:
        raise w.error("", "declares no [[models]]; add at least one model entry")
    if "methods" not in raw:
        raise w.error("", "declares no [[methods]]; add at least one method entry")
    models, overrides = _models(w, raw["models"])
    models = _posttrain(w, raw.get("posttrain"), models, overrides)
    posttrain = _pairs(w.table(raw["posttrain"], "posttrain")) if "posttrain" in raw else ()
    methods = _methods(w, raw["methods"], calibration, models)
    evaluation = _evaluation(w, raw.get("evaluation", {}))
    zeroshot = _zeroshot(w, raw["zeroshot"]) if "zeroshot" in raw else None
    holdout = w.strings(head.get("holdout", []), "study.holdout")
    try:
        seeds = parse_seeds(head.get("seeds", 1), "study.seeds")
    except UsageError as exc:
        raise w.error("study.seeds", str(exc).removeprefix("study.seeds ")) from None
    keys = [m.key for m in models]
    for key in holdout:
        if key not in keys:
            raise w.error("study.holdout", f"{key!r} is not a model key{did_you_mean(key, keys)}; keys: {', '.join(keys)}")
    if holdout and not posttrain:
        raise w.error("study.holdout", "holds out sizes for the law's extrapolation, but the study has no [posttrain]")
    return Study(name=name, path=path, description=w.string(head.get("description", ""), "study.description", True),
                 law=law, holdout=holdout, seeds=seeds, models=models, methods=methods, posttrain=posttrain,
                 evaluation=evaluation, zeroshot=zeroshot, gates=_gates(w, raw.get("gates", {})))
