"""`prunebench eval`: zero-shot tasks through lm-eval on one model, in memory."""

from __future__ import annotations

import json
import sys

from bench.commands.options import add_device_options, add_io_options


def add_parser(p) -> None:
    p.add_argument("--model", required=True,
                   help="alias (smollm2-135m, tiny-llama, nano-*), save_pretrained dir, .gguf file or hub id")
    p.add_argument("--tasks", required=True,
                   help="comma-separated lm-eval tasks; offline: wikitext,wikitext_lastword; online also "
                        "LLM-Pruner's boolq,piqa,hellaswag,winogrande,arc_easy,arc_challenge,openbookqa")
    p.add_argument("--limit", type=int, default=None, help="evaluate the first K documents of each task")
    p.add_argument("--max-length", type=int, default=None,
                   help="model window in tokens (default: the model's positions, at most 2048)")
    p.add_argument("--batch-size", type=int, default=None, help="requests per forward pass (default 8)")
    p.add_argument("--bootstrap-iters", type=int, default=None,
                   help="resamples for perplexity stderrs (default 100000, as lm-eval's CLI)")
    add_io_options(p, data_help="local data directory (default $PRUNEBENCH_DATA_DIR)")
    add_device_options(p)
    p.add_argument("--verbose", action="store_true", help="let lm-eval log its progress on stderr")
    p.add_argument("--json", action="store_true", help="print exactly one JSON object on stdout")


def run(args) -> int:
    from bench.commands.options import run_env
    from bench.errors import UsageError
    from bench.evaluation import zeroshot
    from bench.sources import records

    # Everything cheap first, then the tasks (their data is read here), then the model.
    defaults = zeroshot.ZeroShotSpec(("_",))
    max_length = args.max_length
    if max_length is not None and max_length < 2:
        raise UsageError(f"--max-length must be at least 2 tokens, got {max_length}")
    spec = zeroshot.ZeroShotSpec(
        zeroshot.parse_tasks(args.tasks), limit=args.limit, max_length=max_length or defaults.max_length,
        batch_size=args.batch_size or defaults.batch_size,
        bootstrap_iters=defaults.bootstrap_iters if args.bootstrap_iters is None else args.bootstrap_iters)
    results_dir = records.resolve_results_dir(args.results_dir) if args.results_dir else None
    zeroshot.require_tokenizer_files(args.model)
    tasks = zeroshot.prepare(spec, args.data_dir)

    from bench.sources.models import load_model

    loaded = load_model(args.model, run_env(args, progress=False), dtype=args.dtype)
    if max_length is None:
        tasks = zeroshot.with_model_window(tasks, loaded.model)
    elif max_length > zeroshot.model_positions(loaded.model):
        raise UsageError(f"--max-length {max_length} exceeds the model's maximum positions "
                         f"({zeroshot.model_positions(loaded.model)}); pass a smaller --max-length")
    result = zeroshot.evaluate(loaded.model, loaded.tokenizer, tasks, progress=args.verbose)
    result["model"] = {"spec": args.model, **loaded.info}
    if results_dir is not None:
        from reports.records import ModelInfo, Record, ZeroShot

        records.write_record(results_dir, Record(
            case_id=f"eval-{_slug(args.model)}", method="dense", status="ok", zeroshot=ZeroShot.from_json(result),
            model=ModelInfo(spec=args.model), **records.stamp()))
    if args.json:
        json.dump(result, sys.stdout, sort_keys=True)
        sys.stdout.write("\n")
    else:
        for row in result["results"]:
            err = f" ± {row['stderr']:.4f}" if row["stderr"] is not None else ""
            cap = f" (first {row['samples']} of {row['samples_total']})" if row["samples"] != row["samples_total"] else ""
            print(f"{row['task']:<20} {row['metric']:<16} {row['value']:.4f}{err}{cap}")
        print(f"{args.model}: {len(spec.tasks)} tasks in {result['wall_s']:.1f} s (lm-eval {result['protocol']['lm_eval_version']})")
    return 0


def _slug(spec: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9.]+", "_", spec.rstrip("/").split("/")[-1]) or "model"
