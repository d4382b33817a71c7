"""The study's two axes: [[models]] (specs, keys, families, zoo families, hub pins) and
[[methods]] (labels, options, calibration and ratios, each (model, ratio) combination built
into the method's config once and kept, so a wrong option is found before any case runs and
no later layer builds it again).
"""

from __future__ import annotations

import math
from pathlib import Path

from bench.errors import USER_ERRORS, did_you_mean
from bench.studies.checks import _pairs, _Where
from bench.studies.cases import UNPRUNED
from bench.studies.entries import METHOD_KEYS, MODEL_KEYS, MethodEntry, ModelEntry
from bench.studies.sections import _calibration

# Calibration fields as a record's ``config.prune`` spells them: a method option may not take one.
CALIB_OPTION_NAMES = ("calibration", "samples", "calib_seq_len", "seed")


def _models(w: _Where, value) -> tuple[tuple[ModelEntry, ...], dict]:
    """(the model entries, each entry's posttrain overrides by its `where`)."""
    if not isinstance(value, list) or not value:
        raise w.error("models", "must be a non-empty array of tables ([[models]])")
    out = []
    overrides: dict[str, dict] = {}
    for i, entry in enumerate(value):
        where = f"models[{i}]"
        entry = w.table(entry, where)
        w.keys(entry, MODEL_KEYS, where)
        overrides[where] = w.table(entry.get("posttrain", {}), f"{where}.posttrain")
        options = w.table(entry.get("options", {}), f"{where}.options")
        for method, opts in options.items():
            w.table(opts, f"{where}.options.{method}")
        extra = dict(options=tuple(sorted((m, _pairs(o)) for m, o in options.items())))
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
    return tuple(out), overrides


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
    return [ModelEntry(fam.spec(s.key), s.key, family, zoo=True, where=where, **extra) for s in fam.sizes]


def _methods(w: _Where, value, calibration, models) -> tuple[MethodEntry, ...]:
    """The method entries; `calibration` is the [calibration] table's (spec, keys), or None."""
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
        clash = sorted(set(options) & set(CALIB_OPTION_NAMES))
        if clash:
            raise w.error(f"{where}.options.{clash[0]}", "is a calibration field; set it in [calibration] or in "
                                                         "this method's calibration table")
        ratios, by_model = _ratios(w, entry, where, keys)
        # Every (model override, ratio) combination builds the method's config once, here:
        # wrong option names, types and values are found before any case runs, and the cases
        # carry these very objects.
        configs = []
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
                configs.append((model.key, ratio, config, tuple(sorted(merged))))
        if "calibration" not in entry:
            needs = _needs_calibration(configs)
            calib = calibration if needs else None
            if needs and not calibration:
                raise w.error(where, "needs calibration data: add a [calibration] table or give the method "
                                     "calibration = { source = ..., samples = ..., seq_len = ..., seed = ... }")
        elif isinstance(entry["calibration"], bool):
            if entry["calibration"] and not calibration:
                raise w.error(f"{where}.calibration", "is true, but the study has no [calibration] table")
            calib = calibration if entry["calibration"] else None
        else:
            calib = _calibration(w, entry["calibration"], f"{where}.calibration")
        spec, calib_keys = calib if calib is not None else (None, ())
        out.append(MethodEntry(method, label, calibration=spec, calibration_keys=calib_keys, ratios=ratios,
                               ratios_by_model=by_model, configs=tuple(configs), where=where))
    return tuple(out)


def _needs_calibration(configs) -> bool:
    """Whether the method draws calibration data with any of its configs (as `prunebench prune` decides)."""
    from pruners.registry import needs_calibration

    return any(needs_calibration(config) for _, _, config, _ in configs)


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


def parse_seeds(value, what: str) -> tuple[int, ...]:
    """A study's `seeds` (or `--seeds`): a count N (seeds 0..N-1) or a list of distinct seeds.

    Raises:
        UsageError: 0 or fewer seeds, a negative or non-integer seed, or one given twice.
    """
    from bench.errors import UsageError

    if isinstance(value, bool) or not isinstance(value, (int, list, tuple)):
        raise UsageError(f"{what} must be a number of seeds or a list of seeds, got {value!r}")
    if isinstance(value, int):
        if value < 1:
            raise UsageError(f"{what} must be at least 1 (the number of seeds each case runs under), got {value}")
        return tuple(range(value))
    if not value or any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in value):
        raise UsageError(f"{what} must list non-negative integer seeds, got {list(value)!r}")
    repeated = sorted({v for v in value if list(value).count(v) > 1})
    if repeated:
        raise UsageError(f"{what} lists seed {repeated[0]} more than once; give each seed once")
    return tuple(value)
