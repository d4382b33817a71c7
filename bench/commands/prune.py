"""`prunebench prune`: prune a model, report exact parameter counts, optionally save and evaluate.

Examples::

    prunebench prune --model smollm2-135m --method blockwise --importance l2 --ratio 0.25 \\
        --layers 4:28 --ppl wikitext2:128 --max-windows 16 --json
    prunebench prune --dry-run --model-config llama-3-8b.json --method blockwise --ratio 0.25 \\
        --layers 4:30 --json

Every input error is a one-line message and exit code 2, raised before anything is written.
"""

from __future__ import annotations

import json
import sys

METHOD_OPTIONS = {
    # option dest -> methods it applies to
    "importance": {"blockwise"}, "taylor": {"blockwise"}, "layers": {"blockwise"},
    "attn_layers": {"blockwise"}, "mlp_layers": {"blockwise"}, "granularity": {"blockwise"},
    "faithful": {"blockwise"}, "attention": {"blockwise"}, "variant": {"depth"},
    "seq_agg": {"width"}, "batch_agg": {"width"}, "norm_agg": {"width"},
    "nm": {"nm"}, "nm_method": {"nm"},
}


def add_parser(p) -> None:
    p.add_argument("--model", help="alias (smollm2-135m, tiny-llama, ...), save_pretrained dir, .gguf file or hub id")
    p.add_argument("--method", required=True, help="depth, width, blockwise or nm")
    p.add_argument("--ratio", type=float, default=None,
                   help="fraction to remove in [0, 1): of parameters (depth, width), of each root layer's "
                        "channels (blockwise); for nm, optional and must equal 1 - N/M")
    g = p.add_argument_group("block-wise (LLM-Pruner)")
    g.add_argument("--importance", default=None, help="random, l1, l2 (default) or taylor")
    g.add_argument("--taylor", default=None, help="vectorize, param_first (default), param_second or param_mix")
    g.add_argument("--layers", default=None, metavar="START:END", help="layer range, end exclusive (default: all)")
    g.add_argument("--attn-layers", default=None, metavar="START:END",
                   help="attention range (overrides --layers; implies --attention require)")
    g.add_argument("--mlp-layers", default=None, metavar="START:END", help="MLP range (overrides --layers)")
    g.add_argument("--granularity", default=None, help="kv-group (default) or query-head")
    g.add_argument("--faithful", action="store_true", default=None,
                   help="score KV groups like LLM-Pruner (interleaved query heads)")
    g.add_argument("--attention", default=None,
                   help="auto (default): skip attention when the ratio removes less than a head; "
                        "require: refuse instead; off: MLP only")
    g = p.add_argument_group("depth / width")
    g.add_argument("--variant", default=None, help="depth: oneshot (default), block (LLM-Streamline) or iterative")
    g.add_argument("--seq-agg", default=None, help="width: aggregation over tokens, mean (default), sum or l2")
    g.add_argument("--batch-agg", default=None, help="width: aggregation over samples, l2 (default), mean or sum")
    g.add_argument("--norm-agg", default=None, help="width: aggregation over norm layers, sum (default), mean or max")
    g = p.add_argument_group("N:M sparsity")
    g.add_argument("--nm", default=None, metavar="N:M", help="pattern (default 2:4)")
    g.add_argument("--nm-method", default=None, help="magnitude (default), wanda or sparsegpt")
    g = p.add_argument_group("calibration")
    g.add_argument("--calibration", default="c4", help="c4 (default), wikitext2 or slimpajama (online)")
    g.add_argument("--samples", type=int, default=None, help="calibration samples (default per method)")
    g.add_argument("--seq-len", type=int, default=None, help="calibration tokens per sample (default per method)")
    g.add_argument("--seed", type=int, default=0, help="calibration and random-importance seed")
    g.add_argument("--batch-size", type=int, default=None, help="calibration samples per forward pass")
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
    g.add_argument("--device", default=None, help="torch device (default cuda when available, else cpu)")
    g.add_argument("--dtype", default=None, help="float32, bf16 or fp16 (default float32 on CPU, bf16 on CUDA)")


def build_config(args):
    """The method config from the options (validates them; raises UsageError)."""
    from bench.errors import UsageError
    from pruners import get_method, make_config

    method = get_method(args.method).name
    for dest, methods in METHOD_OPTIONS.items():
        if getattr(args, dest, None) is not None and method not in methods:
            flag = "--" + dest.replace("_", "-")
            raise UsageError(f"{flag} applies to {'/'.join(sorted(methods))} pruning, not {method}; drop it")
    fields = {}
    if method == "nm":
        from pruners.nm import parse_nm

        fields["n"], fields["m"] = parse_nm(args.nm or "2:4")
        fields["nm_method"] = args.nm_method or "magnitude"
        fields["ratio"] = args.ratio
    else:
        if args.ratio is None:
            raise UsageError(f"{method} pruning needs --ratio R with R in [0, 1)")
        fields["ratio"] = args.ratio
    if method == "blockwise":
        opt = {"importance": args.importance, "taylor": args.taylor, "layers": args.layers,
               "attn_layers": args.attn_layers, "mlp_layers": args.mlp_layers,
               "granularity": args.granularity, "faithful": args.faithful, "attention": args.attention}
        if args.attn_layers is not None and args.attention is None:
            opt["attention"] = "require"  # the user asked for attention pruning explicitly
        fields.update({k: v for k, v in opt.items() if v is not None})
        fields["seed"] = args.seed
    elif method == "depth":
        if args.variant is not None:
            fields["variant"] = args.variant
    elif method == "width":
        fields.update({k: getattr(args, k) for k in ("seq_agg", "batch_agg", "norm_agg") if getattr(args, k)})
    if args.batch_size is not None and method in ("depth", "width", "nm"):
        fields["batch_size"] = args.batch_size
    return make_config(method, **fields)


def needs_calibration(config) -> bool:
    method = type(config).method_name
    if method in ("depth", "width"):
        return config.ratio > 0
    if method == "blockwise":
        return config.importance == "taylor" and config.ratio > 0
    return config.nm_method != "magnitude"


def parse_ppl(specs: list[str]) -> list[tuple[str, int]]:
    from bench import data
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


def _meta_model(path):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from bench.errors import UsageError

    try:
        with open(path) as f:
            raw = json.load(f)
    except OSError as exc:
        raise UsageError(f"cannot read --model-config {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"--model-config {path} is not valid JSON ({exc.msg} at line {exc.lineno})") from None
    try:
        config = AutoConfig.for_model(**raw)
    except (ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"--model-config {path} is not a Hugging Face model config: "
                         f"{' '.join(str(exc).split())[:200]}") from None
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config)


def run(args) -> int:
    from bench.errors import UsageError
    from pruners import prune
    from pruners.registry import validate
    from pruners.calibration import CalibrationSpec, default_shape, load_calibration

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
        report = prune(_meta_model(args.model_config), None, config)
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
        samples, seq_len = default_shape(method)
        cal_spec = CalibrationSpec(source=args.calibration, samples=args.samples or samples,
                                   seq_len=args.seq_len or seq_len, seed=args.seed, data_dir=args.data_dir)
    elif args.samples is not None or args.seq_len is not None:
        raise UsageError(f"--samples/--seq-len set calibration, which {method} pruning with these options does "
                         "not use; drop them")

    # ---- load, calibrate, prune
    from bench.models import load_model

    loaded = load_model(args.model, cache_dir=args.cache_dir, device=args.device, dtype=args.dtype)
    model, tokenizer = loaded.model, loaded.tokenizer
    validate(model, config)  # impossible requests fail before calibration is drawn
    calibration = None
    if cal_spec is not None:
        limit = getattr(model.config, "max_position_embeddings", None)
        if limit is not None and cal_spec.seq_len > limit:
            if args.seq_len is not None:
                raise UsageError(f"--seq-len {args.seq_len} exceeds the model's maximum positions ({limit})")
            cal_spec = CalibrationSpec(cal_spec.source, cal_spec.samples, limit, cal_spec.seed, cal_spec.data_dir)
        calibration = load_calibration(tokenizer, cal_spec)
    report = prune(model, calibration, config)

    extra = {"model": {"spec": args.model, **loaded.info}}
    if ppl_specs:
        from bench import perplexity

        extra["ppl"] = {}
        for name, seq_len in ppl_specs:
            extra["ppl"][f"{name}:{seq_len}"] = perplexity.evaluate(
                model, tokenizer, name, seq_len, max_windows=args.max_windows, data_dir=args.data_dir,
                progress=not args.json)
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
