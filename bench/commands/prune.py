"""`prunebench prune`: prune a model, report exact parameter counts, optionally save and evaluate.

Examples::

    prunebench prune --model smollm2-135m --method blockwise --importance l2 --ratio 0.25 \\
        --layers 4:28 --ppl wikitext2:128 --max-windows 16 --json
    prunebench prune --dry-run --model-config llama-3-8b.json --method blockwise --ratio 0.25 \\
        --layers 4:30 --json

Every input error is a one-line message and exit code 2, raised before anything is written.

The method options are not written here: each registered method's config fields become the
flags of its own help group (`pruners.options`), a field named like another method's flag gets
the method as prefix (``--toy-variant``), and ``--ratio``, ``--seed`` and ``--batch-size`` go to
every method that declares the field. Whether calibration is drawn, and its default shape, is
what the method's config declares.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass

from bench.commands.options import add_device_options

SHARED = {"ratio": "--ratio", "seed": "--seed", "batch_size": "--batch-size"}  # config field -> flag


@dataclass(frozen=True)
class MethodFlag:
    """One generated flag: a config field of one method (or one of its `cli_extra` flags)."""

    method: str
    name: str  # the config field, or the `cli_extra` key
    flag: str  # e.g. "--layers"; "--<method>-<name>" when another method or option took the plain one
    option: object | None  # pruners.options.Option; None for a `cli_extra` flag

    @property
    def dest(self) -> str:
        return f"method__{self.method}__{self.name}"


def _builtin_first(methods):
    return sorted(methods, key=lambda m: (not m.module.startswith("pruners."), m.name))


def add_parser(p) -> None:
    from bench.errors import USER_ERRORS
    from bench.registry import methods

    try:
        registered = _builtin_first(methods())
    except USER_ERRORS as exc:  # a broken plugin: one line, exit 2
        p.error(str(exc))
    names = [m.name for m in registered]
    with_batch = [m.name for m in registered if any(o.name == "batch_size" for o in m.options)]
    p.add_argument("--model", help="alias (smollm2-135m, tiny-llama, ...), save_pretrained dir, .gguf file or hub id")
    p.add_argument("--method", required=True, help=f"one of {', '.join(sorted(names))}")
    p.add_argument("--ratio", type=float, default=None,
                   help="the pruning ratio, in [0, 1); what it is a fraction of depends on the method (below)")
    g = p.add_argument_group("calibration")
    g.add_argument("--calibration", default="c4", help="c4 (default), wikitext2 or slimpajama (online)")
    g.add_argument("--samples", type=int, default=None, help="calibration samples (default per method)")
    g.add_argument("--seq-len", type=int, default=None, help="calibration tokens per sample (default per method)")
    g.add_argument("--seed", type=int, default=0, help="calibration and random-importance seed")
    g.add_argument("--batch-size", type=int, default=None,
                   help=f"calibration samples per forward pass ({', '.join(sorted(with_batch))})")
    g = p.add_argument_group("output")
    g.add_argument("--out", default=None, help="save the pruned model (and tokenizer, report) to this new directory")
    g.add_argument("--json", action="store_true", help="print exactly one JSON object on stdout")
    g.add_argument("--dry-run", action="store_true", help="count parameters only, on the meta device (no weights)")
    g.add_argument("--model-config", default=None, help="with --dry-run: a config.json to build the model from")
    g.add_argument("--ppl", action="append", default=[], metavar="DATASET:SEQ_LEN",
                   help="evaluate the pruned model, e.g. wikitext2:128 (repeatable)")
    g.add_argument("--max-windows", type=int, default=None, help="with --ppl: at most K evenly spaced windows")
    g.add_argument("--data-dir", default=None, help="local data directory (default $PRUNEBENCH_DATA_DIR, else the hub)")
    g.add_argument("--cache-dir", default=None, help="prunebench cache (GGUF conversions)")
    add_device_options(g)
    flags = []
    for m in registered:
        ratio = next(o for o in m.options if o.name == "ratio")
        g = p.add_argument_group(f"--method {m.name}", f"{m.summary} --ratio: {ratio.help}.".strip())
        for opt in m.options:
            if opt.cli and opt.name not in SHARED:
                flags.append(_add_flag(g, m.name, opt.name, opt.flag, opt, help=opt.describe(), metavar=opt.metavar))
        for name, spec in getattr(m.config_cls, "cli_extra", {}).items():
            flags.append(_add_flag(g, m.name, name, name, None, help=spec["help"], metavar=spec.get("metavar")))
    p.set_defaults(_method_flags=tuple(flags))


def _add_flag(group, method: str, name: str, flag: str, opt, help: str, metavar: str | None) -> MethodFlag:
    """Add one method's flag; a name another method (or a common option) holds gets the method prefix."""
    import argparse

    for candidate in (f"--{flag}", f"--{method}-{flag}"):
        mf = MethodFlag(method, name, candidate, opt)
        try:
            if opt is not None and opt.kind is bool:
                group.add_argument(candidate, dest=mf.dest, action=argparse.BooleanOptionalAction, default=None,
                                   help=help)
            else:
                group.add_argument(candidate, dest=mf.dest, default=None, help=help,
                                   metavar=metavar or name.upper())
            return mf
        except argparse.ArgumentError:
            continue
    raise TypeError(f"method {method!r}: no free flag for option {name!r}")


def build_config(args):
    """The method config from the options (validates them; raises UsageError)."""
    from bench.errors import UsageError
    from bench.registry import get_method, make_config

    m = get_method(args.method)
    method = m.name
    flags = getattr(args, "_method_flags", ())
    for mf in flags:
        if mf.method != method and getattr(args, mf.dest, None) is not None:
            raise UsageError(f"{mf.flag} applies to {mf.method} pruning, not {method}; drop it")
    fields = {}
    for mf in flags:
        value = getattr(args, mf.dest, None) if mf.method == method else None
        if value is not None:
            fields[mf.name] = value if mf.option is None or isinstance(value, bool) else mf.option.parse(value, mf.flag)
    from_cli = getattr(m.config_cls, "from_cli", None)
    if from_cli is not None:
        fields = from_cli(fields)
    declared = {o.name: o for o in m.options}
    if args.ratio is None and declared["ratio"].required:
        raise UsageError(f"{method} pruning needs --ratio R with R in [0, 1)")
    if args.ratio is not None:
        fields["ratio"] = args.ratio
    if "seed" in declared:
        fields["seed"] = args.seed
    if args.batch_size is not None:
        if "batch_size" not in declared:
            users = sorted(x.name for x in _methods_with("batch_size"))
            raise UsageError(f"--batch-size applies to {'/'.join(users)} pruning, not {method}; drop it")
        fields["batch_size"] = args.batch_size
    return make_config(method, **fields)


def _methods_with(field_name: str):
    from bench.registry import methods

    return [m for m in methods() if any(o.name == field_name for o in m.options)]


def needs_calibration(config) -> bool:
    """Whether `config` draws calibration data, as its method declares (`needs_calibration`)."""
    from pruners.registry import needs_calibration as declared

    return declared(config)


def parse_ppl(specs: list[str]) -> list[tuple[str, int]]:
    from bench.sources import data
    from bench.errors import UsageError, did_you_mean

    out = []
    for spec in specs:
        name, _, seq = spec.partition(":")
        if name not in data.EVAL_SPLIT:
            raise UsageError(f"unknown --ppl dataset {name!r}{did_you_mean(name, data.EVAL_SPLIT)}; "
                             f"choose one of {', '.join(data.EVAL_SPLIT)}")
        try:
            seq_len = int(seq)
        except ValueError:
            raise UsageError(f"--ppl must look like DATASET:SEQ_LEN (e.g. wikitext2:128), got {spec!r}") from None
        if seq_len < 2:
            raise UsageError(f"--ppl sequence length must be at least 2, got {spec!r}")
        out.append((name, seq_len))
    return out


def _model_config(path):
    """The transformers config in a --model-config JSON file (a bad file is one line)."""
    from transformers import AutoConfig

    from bench.errors import UsageError

    try:
        with open(path) as f:
            raw = json.load(f)
    except OSError as exc:
        raise UsageError(f"cannot read --model-config {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"--model-config {path} is not valid JSON ({exc.msg} at line {exc.lineno})") from None
    try:
        return AutoConfig.for_model(**raw)
    except (ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"--model-config {path} is not a Hugging Face model config: "
                         f"{' '.join(str(exc).split())[:200]}") from None


def run(args) -> int:
    from bench.commands.options import run_env
    from bench.errors import UsageError
    from bench.sources.calibration import CalibrationSpec, load_calibration
    from bench.studies.params import meta_model
    from pruners.calibration import default_shape
    from pruners.registry import prune, validate

    # ---- validate everything cheap before loading anything
    config = build_config(args)
    method = type(config).method_name
    ppl_specs = parse_ppl(args.ppl)
    if args.max_windows is not None and args.max_windows < 1:
        raise UsageError(f"--max-windows must be at least 1, got {args.max_windows}")
    if args.dry_run:
        if not args.model_config:
            raise UsageError("--dry-run needs --model-config CONFIG.json (the model is built on the meta device)")
        if args.out or ppl_specs:
            raise UsageError("--dry-run has no weights to save or evaluate; drop --out and --ppl")
        report = prune(meta_model(_model_config(args.model_config)), None, config)
        return _emit(args, report, {"model_config": args.model_config})
    if args.model_config:
        raise UsageError("--model-config is only for --dry-run; pass the model with --model")
    if not args.model:
        raise UsageError("--model is required (or use --dry-run --model-config CONFIG.json)")
    if args.out:
        from pathlib import Path

        out = Path(args.out)
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise UsageError(f"output directory {out} already exists and is not empty; remove it or choose another --out")
    cal_spec = None
    if needs_calibration(config):
        samples, seq_len = default_shape(config)
        cal_spec = CalibrationSpec(source=args.calibration, samples=args.samples or samples,
                                   seq_len=args.seq_len or seq_len, seed=args.seed)
    elif args.samples is not None or args.seq_len is not None:
        raise UsageError(f"--samples/--seq-len set calibration, which {method} pruning with these options does "
                         "not use; drop them")

    # ---- load, calibrate, prune
    from bench.sources.models import load_model

    env = run_env(args, progress=not args.json)
    loaded = load_model(args.model, env, dtype=args.dtype)
    model, tokenizer = loaded.model, loaded.tokenizer
    validate(model, config)  # impossible requests fail before calibration is drawn
    calibration = None
    if cal_spec is not None:
        limit = getattr(model.config, "max_position_embeddings", None)
        if limit is not None and cal_spec.seq_len > limit:
            if args.seq_len is not None:
                raise UsageError(f"--seq-len {args.seq_len} exceeds the model's maximum positions ({limit})")
            cal_spec = CalibrationSpec(cal_spec.source, cal_spec.samples, limit, cal_spec.seed)
        calibration = load_calibration(tokenizer, cal_spec, args.data_dir)
    report = prune(model, calibration, config)

    extra = {"model": {"spec": args.model, **loaded.info}}
    if ppl_specs:
        from bench.evaluation import perplexity

        extra["ppl"] = {}
        for name, seq_len in ppl_specs:
            extra["ppl"][f"{name}:{seq_len}"] = perplexity.evaluate(
                model, tokenizer, name, seq_len, max_windows=args.max_windows, data_dir=args.data_dir,
                progress=env.progress)
    if args.out:
        from pruners.saving import save_pruned

        extra["out"] = str(save_pruned(model, args.out, tokenizer=tokenizer, report=report))
    return _emit(args, report, extra)


def _emit(args, report, extra: dict) -> int:
    record = report.to_dict()
    record.update(extra)
    if args.json:
        json.dump(record, sys.stdout, sort_keys=True)
        sys.stdout.write("\n")
        return 0
    print(f"{record['method']}: {record['params_before']:,} -> {record['params_after']:,} parameters "
          f"({record['remaining_pct']:.4f}% remain, ratio {record['ratio']:.4f}); "
          f"{record['wall_time_s']:.2f} s, peak {record['peak_memory_bytes'] / 2**20:.1f} MiB ({record['memory_kind']})")
    for note in record["notes"]:
        print(f"note: {note}")
    for key, res in record.get("ppl", {}).items():
        print(f"ppl {key}: {res['ppl']:.4f} ({res['windows']}/{res['windows_total']} windows)")
    if "out" in record:
        print(f"saved to {record['out']}")
    return 0
