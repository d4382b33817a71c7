"""`prunebench ppl`: perplexity of one model on one dataset, LLM-Pruner protocol."""

from __future__ import annotations

import json
import sys

from bench.commands.options import add_device_options, add_io_options


def add_parser(p) -> None:
    p.add_argument("--model", required=True,
                   help="alias (smollm2-135m, tiny-llama, tiny-qwen2), save_pretrained dir, .gguf file or hub id")
    p.add_argument("--dataset", required=True, help="wikitext2 (test split) or ptb (validation split)")
    p.add_argument("--split", default=None, help="override the protocol's split (not recommended)")
    p.add_argument("--seq-len", type=int, required=True, help="window length in tokens (seed table: 128, 2048)")
    p.add_argument("--max-windows", type=int, default=None, help="evaluate at most K evenly spaced windows")
    p.add_argument("--batch-size", type=int, default=None, help="windows per forward pass (default: 4096 tokens' worth)")
    add_io_options(p, data_help="local data directory (default $PRUNEBENCH_DATA_DIR, else the hub)")
    add_device_options(p)
    p.add_argument("--json", action="store_true", help="print exactly one JSON object on stdout")


def run(args) -> int:
    from bench.commands.options import run_env
    from bench.errors import UsageError, did_you_mean
    from bench.evaluation import perplexity
    from bench.sources import data, records
    from bench.sources.models import load_model

    # Validate everything cheap before loading a model: bad input must fail fast.
    if args.dataset not in data.EVAL_SPLIT:
        raise UsageError(f"unknown dataset {args.dataset!r}{did_you_mean(args.dataset, data.EVAL_SPLIT)}; "
                         f"choose one of {', '.join(data.EVAL_SPLIT)}")
    data.get_source(args.dataset, args.split or data.EVAL_SPLIT[args.dataset])
    if args.seq_len < 2:
        raise UsageError(f"--seq-len must be at least 2 to predict any token, got {args.seq_len}")
    if args.max_windows is not None and args.max_windows < 1:
        raise UsageError(f"--max-windows must be at least 1, got {args.max_windows}")
    results_dir = records.resolve_results_dir(args.results_dir) if args.results_dir else None
    data.load_rows(args.dataset, args.split or data.EVAL_SPLIT[args.dataset], args.data_dir)

    env = run_env(args, progress=not args.json)
    loaded = load_model(args.model, env, dtype=args.dtype)
    result = perplexity.evaluate(loaded.model, loaded.tokenizer, args.dataset, args.seq_len,
                                 split=args.split, max_windows=args.max_windows,
                                 batch_size=args.batch_size, data_dir=args.data_dir, progress=env.progress)
    result["model"] = {"spec": args.model, **loaded.info}
    if results_dir is not None:
        from bench.harness.provenance import provenance
        from reports.records import ModelInfo, Perplexity, Record

        case_id = f"ppl-{_slug(args.model)}-{args.dataset}-{args.seq_len}"
        prov = provenance(args.model, [(args.dataset, result["split"])], env, dtype=args.dtype)
        records.write_record(results_dir, Record(
            case_id=case_id, method="dense", status="ok", ppl={f"{args.dataset}:{args.seq_len}": Perplexity.from_json(result)},
            model=ModelInfo(spec=args.model), provenance=prov, **records.stamp()))
    if args.json:
        json.dump(result, sys.stdout, sort_keys=True)
        sys.stdout.write("\n")
    else:
        print(f"{args.model} {args.dataset}/{result['split']} seq_len={args.seq_len}: ppl {result['ppl']:.4f} "
              f"(nll {result['nll']:.4f}, {result['windows']}/{result['windows_total']} windows, "
              f"{result['tokens']} tokens, {result['tokens_per_s']:.0f} tok/s)")
    return 0


def _slug(spec: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9.]+", "_", spec.rstrip("/").split("/")[-1]) or "model"
