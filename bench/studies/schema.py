"""Study files: the TOML schema, read with `tomllib` and validated into dataclasses.

A study declares a benchmark matrix as data (DESIGN.md section 2): which models, which
methods at which ratios, calibration, the post-training recipe, the evaluations, the law,
the held-out sizes and default gates. `parse_study` checks every section against the
dataclasses the code runs with (`pruners.registry.make_config`, `CalibrationSpec`,
`bench.training.posttrain.Recipe.from_options`, `bench.evaluation.zeroshot.ZeroShotSpec`, `bench.harness.cases.EvalSpec`),
so a mistake is one line naming the file and the key, before any case spends compute.
`bench.studies.expand` turns the validated study into `bench.harness.cases.Case` values.

Layout (every table is optional except ``models`` and ``methods``)::

    include = "nano"              # a built-in study or a path (relative to this file): its
                                  # tables are merged under this file's; arrays replace
    [study]
    name = "my-study"             # first part of every case id (default: the file name)
    description = "..."
    law = "p2"                    # scaling law fitted at the end (--law overrides)
    holdout = ["l4"]              # size keys held out for extrapolation (--holdout overrides)

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

    [calibration]                 # bench.training.calibration_data.CalibrationSpec
    source = "c4"; samples = 128; seq_len = 2048; seed = 0

    [posttrain]                   # bench.training.posttrain.Recipe fields (absent: no post-training)
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
runs, each selected case's memory need is estimated from its config (`bench.sources.memory`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser, as the tomli package
    import tomli as tomllib

from bench.errors import USER_ERRORS, UsageError, did_you_mean
from bench.training.calibration_data import CALIB_KEYS as CALIB_KEYS_OF_CASES

BUILTIN_DIR = Path(__file__).resolve().parent
SUFFIX = ".toml"

TOP_KEYS = ("include", "study", "models", "methods", "calibration", "posttrain", "evaluation", "zeroshot", "gates")
STUDY_KEYS = ("name", "description", "law", "holdout")
MODEL_KEYS = ("spec", "key", "family", "zoo", "posttrain", "options", "revision")
METHOD_KEYS = ("method", "label", "ratios", "options", "calibration")
CALIB_KEYS = ("source", "samples", "seq_len", "seed")
EVAL_KEYS = ("datasets", "seq_lens", "max_windows", "per_case")
ZEROSHOT_KEYS = ("tasks", "limit", "limits", "max_length", "batch_size", "bootstrap_iters")
GATE_KEYS = ("max_extrapolation_error", "baseline", "max_ppl_regression", "max_control_improvement")
UNPRUNED = ("dense", "control")  # methods that keep the model as it is (ratio 0)
# Calibration fields as a case's prune options spell them (`bench.training.calibration_data.CALIB_KEYS`).
CASE_CALIB = {field: key for key, field in CALIB_KEYS_OF_CASES.items()}


# ----------------------------------------------------------------------------- dataclasses


@dataclass(frozen=True)
class ModelEntry:
    """One model of a study (a zoo entry expands to one per size)."""

    spec: str
    key: str
    family: str
    posttrain: tuple = ()  # sorted (key, value) overrides of the study's recipe
    options: tuple = ()  # (method, sorted (key, value) overrides) pairs
    where: str = ""  # "models[2]", for messages

    def options_for(self, method: str) -> dict:
        return dict(dict(self.options).get(method, ()))


@dataclass(frozen=True)
class MethodEntry:
    """One row of the method axis: a method, its label, options, calibration and ratios."""

    method: str
    label: str
    options: tuple = ()  # sorted (key, value) pairs: the method's config fields
    calibration: tuple = ()  # the case's calibration options (calibration, samples, ...), or ()
    ratios: tuple = ()  # ratios for every model, or () when `ratios_by_model` is set
    ratios_by_model: tuple = ()  # (model key, ratios) pairs
    where: str = ""

    def ratios_for(self, model_key: str) -> tuple:
        """The ratios this method runs on a model (() when it skips the model)."""
        if self.method in UNPRUNED:
            return (0.0,)
        if self.ratios_by_model:
            return dict(self.ratios_by_model).get(model_key, ())
        return self.ratios


@dataclass(frozen=True)
class Evaluation:
    """Perplexity measurements: every dataset at every seq_len, with window caps."""

    datasets: tuple[str, ...] = ()
    seq_lens: tuple[int, ...] = ()
    caps: tuple = ()  # (seq_len, max windows) pairs
    per_case: bool = False

    def cap(self, seq_len: int) -> int | None:
        return dict(self.caps).get(seq_len)


@dataclass(frozen=True)
class Gates:
    """Default gate options; a gate option given on the command line replaces its default."""

    max_extrapolation_error: tuple[str, ...] = ()
    baseline: str | None = None
    max_ppl_regression: str | None = None
    max_control_improvement: str | None = None


@dataclass(frozen=True)
class Study:
    """A validated study file."""

    name: str
    path: Path
    description: str = ""
    law: str = "p2"
    holdout: tuple[str, ...] = ()
    models: tuple[ModelEntry, ...] = ()
    methods: tuple[MethodEntry, ...] = ()
    posttrain: tuple = ()  # sorted (key, value) pairs; () = no post-training
    evaluation: Evaluation = field(default_factory=Evaluation)
    zeroshot: tuple = ()  # validated ZeroShotSpec fields as sorted pairs; () = none
    gates: Gates = field(default_factory=Gates)

    def method(self, label: str) -> MethodEntry:
        for m in self.methods:
            if m.label == label:
                return m
        raise KeyError(label)


# ----------------------------------------------------------------------------- reading


class _Where:
    """Formats one-line errors: ``study FILE: KEY: problem``."""

    def __init__(self, path: Path):
        self.path = path

    def error(self, key: str, message: str) -> UsageError:
        return UsageError(f"study {self.path}: {key}: {message}" if key else f"study {self.path}: {message}")

    def keys(self, table: dict, known, key: str) -> None:
        for k in table:
            if k not in known:
                raise self.error(f"{key}.{k}" if key else k,
                                 f"unknown key{did_you_mean(k, known)}; known keys: {', '.join(known)}")

    def table(self, value, key: str) -> dict:
        if not isinstance(value, dict):
            raise self.error(key, f"must be a table, got {_kind(value)}")
        return value

    def string(self, value, key: str, empty: bool = False) -> str:
        if not isinstance(value, str) or (not empty and not value):
            raise self.error(key, f"must be a{'' if empty else ' non-empty'} string, got {value!r}")
        return value

    def integer(self, value, key: str, low: int = 1) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise self.error(key, f"must be an integer >= {low}, got {value!r}")
        return value

    def strings(self, value, key: str) -> tuple[str, ...]:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self.error(key, f"must be a list of strings, got {value!r}")
        return tuple(value)

    def boolean(self, value, key: str) -> bool:
        if not isinstance(value, bool):
            raise self.error(key, f"must be true or false, got {value!r}")
        return value


def _kind(value) -> str:
    return {dict: "a table", list: "an array", str: "a string", bool: "a boolean", int: "an integer",
            float: "a number"}.get(type(value), type(value).__name__)


def _frozen(value):
    """TOML value -> hashable value (arrays become tuples), so cases stay hashable."""
    if isinstance(value, list):
        return tuple(_frozen(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _frozen(v)) for k, v in value.items()))
    return value


def _pairs(table: dict) -> tuple:
    return tuple(sorted((k, _frozen(v)) for k, v in table.items()))


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


# ----------------------------------------------------------------------------- validation


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
    calibration = _calibration(w, raw["calibration"], "calibration") if "calibration" in raw else ()
    if "models" not in raw:
        raise w.error("", "declares no [[models]]; add at least one model entry")
    if "methods" not in raw:
        raise w.error("", "declares no [[methods]]; add at least one method entry")
    models = _models(w, raw["models"])
    posttrain = _posttrain(w, raw.get("posttrain"), models)
    methods = _methods(w, raw["methods"], calibration, models)
    evaluation = _evaluation(w, raw.get("evaluation", {}))
    zeroshot = _zeroshot(w, raw["zeroshot"]) if "zeroshot" in raw else ()
    holdout = w.strings(head.get("holdout", []), "study.holdout")
    keys = [m.key for m in models]
    for key in holdout:
        if key not in keys:
            raise w.error("study.holdout", f"{key!r} is not a model key{did_you_mean(key, keys)}; keys: {', '.join(keys)}")
    if holdout and not posttrain:
        raise w.error("study.holdout", "holds out sizes for the law's extrapolation, but the study has no [posttrain]")
    return Study(name=name, path=path, description=w.string(head.get("description", ""), "study.description", True),
                 law=law, holdout=holdout, models=models, methods=methods, posttrain=posttrain,
                 evaluation=evaluation, zeroshot=zeroshot, gates=_gates(w, raw.get("gates", {})))


def _calibration(w: _Where, value, key: str) -> tuple:
    """A calibration table -> the case's calibration options, checked by CalibrationSpec."""
    from bench.training.calibration_data import CalibrationSpec

    table = w.table(value, key)
    w.keys(table, CALIB_KEYS, key)
    if "source" in table:
        w.string(table["source"], f"{key}.source")
    for k in ("samples", "seq_len"):
        if k in table:
            w.integer(table[k], f"{key}.{k}", low=2 if k == "seq_len" else 1)
    if "seed" in table:
        w.integer(table["seed"], f"{key}.seed", low=0)
    try:
        CalibrationSpec(**table)
    except USER_ERRORS as exc:
        raise w.error(key, str(exc)) from None
    return tuple(sorted((CASE_CALIB[k], v) for k, v in table.items()))


def _models(w: _Where, value) -> tuple[ModelEntry, ...]:
    if not isinstance(value, list) or not value:
        raise w.error("models", "must be a non-empty array of tables ([[models]])")
    out = []
    for i, entry in enumerate(value):
        where = f"models[{i}]"
        entry = w.table(entry, where)
        w.keys(entry, MODEL_KEYS, where)
        posttrain = w.table(entry.get("posttrain", {}), f"{where}.posttrain")
        options = w.table(entry.get("options", {}), f"{where}.options")
        for method, opts in options.items():
            w.table(opts, f"{where}.options.{method}")
        extra = dict(posttrain=_pairs(posttrain), options=tuple(sorted((m, _pairs(o)) for m, o in options.items())))
        if "zoo" in entry:
            bad = [k for k in ("spec", "key", "family") if k in entry]
            if bad:
                raise w.error(f"{where}.{bad[0]}", "a zoo entry takes its specs, keys and family from the zoo; "
                                                   "drop the key or the zoo entry")
            out += _zoo_models(w, w.string(entry["zoo"], f"{where}.zoo"), where, extra)
            continue
        if "spec" not in entry:
            raise w.error(where, "needs spec = \"...\" (a hub id, local directory, .gguf file or alias) or "
                                 "zoo = \"<family>\"")
        spec = w.string(entry["spec"], f"{where}.spec")
        key = w.string(entry.get("key", _default_key(spec)), f"{where}.key", empty=True)
        if "revision" in entry:
            spec = _pin(w, spec, w.string(entry["revision"], f"{where}.revision"), where)
        if any(c.isspace() or c in "[]/" for c in key):
            raise w.error(f"{where}.key", f"{key!r} must not contain spaces, brackets or slashes (it is part of case ids)")
        family = w.string(entry.get("family", key or spec), f"{where}.family")
        out.append(ModelEntry(spec, key, family, where=where, **extra))
    seen: dict[str, str] = {}
    for m in out:
        if m.key in seen and seen[m.key] != m.where:
            raise w.error(f"{m.where}.key", f"{m.key!r} is also the key of {seen[m.key]}; model keys must differ")
        seen[m.key] = m.where
    return tuple(out)


def _pin(w: _Where, spec: str, revision: str, where: str) -> str:
    """``spec`` pinned to ``revision`` (`bench.sources.hub`: ``org/name@revision``)."""
    from bench.sources import hub

    parsed = hub.parse(spec)
    if parsed is None:
        raise w.error(f"{where}.revision", f"pins a hub revision, but spec {spec!r} is not a hub id (org/name); "
                                           f"drop the key or give a hub id")
    if parsed.pin is not None:
        raise w.error(f"{where}.revision", f"spec {spec!r} already pins revision {parsed.pin}; give it once")
    if any(c.isspace() for c in revision):
        raise w.error(f"{where}.revision", f"{revision!r} is not a revision (a commit sha, branch or tag)")
    return hub.pinned(spec, revision)


def _default_key(spec: str) -> str:
    """``meta-llama/Llama-3.2-1B`` -> ``llama-3.2-1b`` (a pin ``@rev`` dropped); a path -> its last part."""
    from bench.sources import hub

    if hub.parse(spec) is not None:
        spec = hub.parse(spec).hub_id
    return Path(spec.rstrip("/")).name.removesuffix(".gguf").lower()


def _zoo_models(w: _Where, family: str, where: str, extra: dict) -> list[ModelEntry]:
    from bench.training.zoo import FAMILIES

    if family not in FAMILIES:
        raise w.error(f"{where}.zoo", f"unknown zoo family {family!r}{did_you_mean(family, FAMILIES)}; "
                                      f"choose one of {', '.join(sorted(FAMILIES))}")
    fam = FAMILIES[family]
    return [ModelEntry(fam.spec(s.key), s.key, family, where=where, **extra) for s in fam.sizes]


def _posttrain(w: _Where, value, models) -> tuple:
    """The recipe, checked by `Recipe.from_options` for every model's overrides too."""
    if value is None:
        for m in models:
            if m.posttrain:
                raise w.error(f"{m.where}.posttrain", "overrides a recipe, but the study has no [posttrain]")
        return ()
    table = w.table(value, "posttrain")
    if not table:
        raise w.error("posttrain", "is empty; give the recipe's fields or drop the table")
    for m in models:
        _recipe(w, {**table, **dict(m.posttrain)}, f"{m.where}.posttrain" if m.posttrain else "posttrain")
    return _pairs(table)


def _recipe(w: _Where, options: dict, key: str):
    from bench.training import corpus
    from bench.training.posttrain import Recipe

    try:
        return Recipe.from_options(options)
    except UsageError as exc:
        if options.get("corpus") in PENDING_CORPORA and options["corpus"] not in corpus.CORPORA:
            # Everything else of the recipe is still checked; the corpus fails at run time.
            return _recipe(w, {**options, "corpus": "wikitext2"}, key)
        raise w.error(key, str(exc)) from None
    except TypeError as exc:
        raise w.error(key, " ".join(str(exc).split())) from None


# Corpora a study may name before this build has them: the rest of its recipe is validated, and
# a case that post-trains on one fails when it runs with the corpus module's own error. Empty
# since slimpajama landed (issue 10 item 4).
PENDING_CORPORA: tuple[str, ...] = ()


def pending_corpus(study: Study) -> str | None:
    """The recipe's corpus when this build cannot train on it yet, else None."""
    from bench.training import corpus

    name = dict(study.posttrain).get("corpus")
    return name if name is not None and name not in corpus.CORPORA else None


def _methods(w: _Where, value, calibration: tuple, models) -> tuple[MethodEntry, ...]:
    from bench.registry import known_methods, make_config

    if not isinstance(value, list) or not value:
        raise w.error("methods", "must be a non-empty array of tables ([[methods]])")
    known = list(UNPRUNED) + known_methods()
    keys = [m.key for m in models]
    used = sorted({e.get("method") for e in value if isinstance(e, dict) and e.get("method") not in UNPRUNED} - {None})
    for model in models:
        for method, _ in model.options:
            if method not in used:
                raise w.error(f"{model.where}.options.{method}",
                              f"no [[methods]] entry uses method {method!r}{did_you_mean(method, used)}; the "
                              f"study's pruning methods are {', '.join(used) or 'none'}")
    out = []
    for i, entry in enumerate(value):
        where = f"methods[{i}]"
        entry = w.table(entry, where)
        w.keys(entry, METHOD_KEYS, where)
        if "method" not in entry:
            raise w.error(where, f"needs method = \"...\", one of {', '.join(known)}")
        method = w.string(entry["method"], f"{where}.method")
        if method not in known:
            raise w.error(f"{where}.method", f"unknown method {method!r}{did_you_mean(method, known)}; "
                                             f"choose one of {', '.join(known)}")
        where = f"{where} ({method})"
        label = w.string(entry.get("label", method), f"{where}.label")
        if any(c.isspace() or c in "[]/" for c in label):
            raise w.error(f"{where}.label", f"{label!r} must not contain spaces, brackets or slashes")
        options = w.table(entry.get("options", {}), f"{where}.options")
        if method in UNPRUNED:
            for k in ("ratios", "options", "calibration"):
                if k in entry and entry[k] not in ({}, False):
                    raise w.error(f"{where}.{k}", f"{method} keeps the model unpruned and takes no {k}; drop the key")
            out.append(MethodEntry(method, label, where=where))
            continue
        clash = sorted(set(options) & set(CASE_CALIB.values()))
        if clash:
            raise w.error(f"{where}.options.{clash[0]}", "is a calibration field; set it in [calibration] or in "
                                                         "this method's calibration table")
        ratios, by_model = _ratios(w, entry, where, keys)
        all_ratios = ratios or tuple(r for _, rs in by_model for r in rs)
        # Every (model override, ratio) combination builds the method's config once: wrong
        # option names, types and values are found here.
        for model in models:
            merged = {**options, **model.options_for(method)}
            for ratio in (dict(by_model).get(model.key, ()) if by_model else ratios):
                try:
                    config = make_config(method, ratio=ratio, **merged)
                except USER_ERRORS as exc:
                    key = f"{where}.options" + (f" with {model.where}.options.{method}"
                                                if model.options_for(method) else "")
                    raise w.error(key, f"{exc} (model {model.key or model.spec}, ratio {ratio:g})") from None
                except TypeError as exc:
                    raise w.error(f"{where}.options", " ".join(str(exc).split())) from None
        if "calibration" not in entry:
            needs = _needs_calibration(method, options, all_ratios)
            calib = calibration if needs else ()
            if needs and not calibration:
                raise w.error(where, "needs calibration data: add a [calibration] table or give the method "
                                     "calibration = { source = ..., samples = ..., seq_len = ..., seed = ... }")
        elif isinstance(entry["calibration"], bool):
            if entry["calibration"] and not calibration:
                raise w.error(f"{where}.calibration", "is true, but the study has no [calibration] table")
            calib = calibration if entry["calibration"] else ()
        else:
            calib = _calibration(w, entry["calibration"], f"{where}.calibration")
        out.append(MethodEntry(method, label, options=_pairs(options), calibration=calib, ratios=ratios,
                               ratios_by_model=by_model, where=where))
    return tuple(out)


def _needs_calibration(method: str, options: dict, ratios) -> bool:
    """Whether the method draws calibration data with these options (as `prunebench prune` decides)."""
    from bench.registry import make_config
    from pruners.registry import needs_calibration

    return any(needs_calibration(make_config(method, ratio=r, **options)) for r in ratios or (0.0,))


def _ratio(w: _Where, value, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise w.error(key, f"ratios must be numbers, got {value!r}")
    r = float(value)
    if not math.isfinite(r) or not 0.0 < r < 1.0:
        raise w.error(key, f"ratio {value!r} is outside (0, 1): it is the fraction of parameters to remove")
    return r


def _ratios(w: _Where, entry: dict, where: str, keys: list[str]) -> tuple[tuple, tuple]:
    """(ratios for every model, ()) or ((), (model key, ratios) pairs)."""
    if "ratios" not in entry:
        raise w.error(where, "needs ratios = [...] (or a table of ratios per model key)")
    value = entry["ratios"]
    key = f"{where}.ratios"

    def one_list(v, k) -> tuple:
        if not isinstance(v, list) or not v:
            raise w.error(k, f"must be a non-empty array of ratios, got {v!r}")
        rs = tuple(_ratio(w, r, k) for r in v)
        if len(set(rs)) != len(rs):
            raise w.error(k, f"repeats a ratio: {list(v)}")
        return rs

    if isinstance(value, dict):
        for model_key in value:
            if model_key not in keys:
                raise w.error(f"{key}.{model_key}", f"is not a model key{did_you_mean(model_key, keys)}; "
                                                    f"keys: {', '.join(repr(k) for k in keys)}")
        return (), tuple((k, one_list(v, f"{key}.{k}")) for k, v in value.items())
    return one_list(value, key), ()


def _evaluation(w: _Where, value) -> Evaluation:
    from bench.sources.data import EVAL_SPLIT

    table = w.table(value, "evaluation")
    w.keys(table, EVAL_KEYS, "evaluation")
    if not table:
        return Evaluation()
    datasets = w.strings(table.get("datasets", []), "evaluation.datasets")
    for d in datasets:
        if d not in EVAL_SPLIT:
            raise w.error("evaluation.datasets", f"unknown dataset {d!r}{did_you_mean(d, EVAL_SPLIT)}; "
                                                 f"choose from {', '.join(EVAL_SPLIT)}")
    seqs = table.get("seq_lens", [])
    if not isinstance(seqs, list) or not seqs:
        raise w.error("evaluation.seq_lens", f"must be a non-empty array of sequence lengths, got {seqs!r}")
    seq_lens = tuple(w.integer(s, "evaluation.seq_lens", low=2) for s in seqs)
    if not datasets:
        raise w.error("evaluation.datasets", "must name at least one dataset")
    caps: dict[int, int] = {}
    cap = table.get("max_windows")
    if isinstance(cap, dict):
        for k, v in cap.items():
            if not k.isdigit() or int(k) not in seq_lens:
                raise w.error(f"evaluation.max_windows.{k}", f"is not one of seq_lens {list(seq_lens)}")
            caps[int(k)] = w.integer(v, f"evaluation.max_windows.{k}")
    elif cap is not None:
        caps = {s: w.integer(cap, "evaluation.max_windows") for s in seq_lens}
    per_case = w.boolean(table.get("per_case", False), "evaluation.per_case")
    return Evaluation(datasets, seq_lens, tuple((s, caps[s]) for s in seq_lens if s in caps), per_case)


def _zeroshot(w: _Where, value) -> tuple:
    from bench.evaluation.zeroshot import ZeroShotSpec

    table = w.table(value, "zeroshot")
    w.keys(table, ZEROSHOT_KEYS, "zeroshot")
    if "tasks" not in table:
        raise w.error("zeroshot", "needs tasks = [...] (lm-eval task names)")
    tasks = w.strings(table["tasks"], "zeroshot.tasks")
    limits = w.table(table.get("limits", {}), "zeroshot.limits")
    fields = {"tasks": tasks}
    if "limit" in table:
        fields["limit"] = w.integer(table["limit"], "zeroshot.limit")
    if limits:
        fields["task_limits"] = tuple((t, w.integer(k, f"zeroshot.limits.{t}")) for t, k in limits.items())
    for k in ("max_length", "batch_size", "bootstrap_iters"):
        if k in table:
            fields[k] = w.integer(table[k], f"zeroshot.{k}", low=0 if k == "bootstrap_iters" else 1)
    try:
        ZeroShotSpec(**fields)
    except UsageError as exc:
        raise w.error("zeroshot", str(exc)) from None
    return tuple(sorted(fields.items()))


def _gates(w: _Where, value) -> Gates:
    from bench.harness.gates import parse_law_scope, parse_percent

    table = w.table(value, "gates")
    w.keys(table, GATE_KEYS, "gates")
    scopes = w.strings(table.get("max_extrapolation_error", []), "gates.max_extrapolation_error")
    try:
        for s in scopes:
            parse_law_scope(s)
        for k in ("max_ppl_regression", "max_control_improvement"):
            if k in table:
                parse_percent(w.string(table[k], f"gates.{k}"), f"gates.{k}")
    except UsageError as exc:
        raise w.error("gates", str(exc)) from None
    baseline = table.get("baseline")
    if baseline is not None:  # a results directory or record file, relative to the study file
        baseline = str(w.path.parent / Path(w.string(baseline, "gates.baseline")).expanduser())
    if (baseline is None) != ("max_ppl_regression" not in table):
        raise w.error("gates", "baseline and max_ppl_regression go together: give both or neither")
    return Gates(scopes, baseline, table.get("max_ppl_regression"), table.get("max_control_improvement"))
