"""Zero-shot evaluation of an in-memory model through lm-eval (DESIGN.md section 7).

The model a case prunes or post-trains is wrapped as it is, with no save and reload:
``HFLM(pretrained=model, tokenizer=tokenizer, max_length=..., batch_size=...)``. The tokenizer
and ``max_length`` are always passed, because without them lm-eval would look the tokenizer up
on the hub and take the config's positions (131k for Llama 3) as its window. All tasks of one
evaluation go through one ``simple_evaluate`` call on one wrapper, so the model is wrapped and
the task data tokenised once per evaluation.

Tasks are lm-eval task names. The offline ones are shipped in `bench.tasks` and read the local
data directory; any other name is one of lm-eval's own tasks and needs the hub (or, with
``HF_DATASETS_OFFLINE=1``, a warm HF datasets cache).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import time
from dataclasses import dataclass, field, replace

from bench.errors import UsageError, did_you_mean
from bench.tasks import LOCAL_TASKS, TASKS_DIR

LM_EVAL_EXTRA = "pip install 'prunebench[lm-eval]'"

# LLM-Pruner's seven zero-shot tasks, in its table's column order, with the metric it reports.
LLM_PRUNER_TASKS = {
    "boolq": "acc", "piqa": "acc", "hellaswag": "acc_norm", "winogrande": "acc",
    "arc_easy": "acc", "arc_challenge": "acc_norm", "openbookqa": "acc_norm",
}
# The headline metric of each shipped offline task (the others are recorded too).
LOCAL_PRIMARY = {"wikitext": "word_perplexity", "wikitext_lastword": "acc"}

DEFAULT_MAX_LENGTH = 2048
DEFAULT_BATCH_SIZE = 8
# Resamples for the bootstrapped stderr of perplexity-type metrics: lm-eval's default, which
# its CLI always uses, so both give the same stderr (about a second of CPU for capped runs).
DEFAULT_BOOTSTRAP_ITERS = 100_000


def primary_metric(task: str) -> str | None:
    """The metric a table shows for `task` (LLM-Pruner's convention for its seven tasks)."""
    return LLM_PRUNER_TASKS.get(task) or LOCAL_PRIMARY.get(task)


def require_lm_eval():
    """The lm_eval module, or a usage error naming the extra that installs it."""
    try:
        import lm_eval
        import lm_eval.models.huggingface  # noqa: F401  - HFLM, the in-memory wrapper
    except ImportError:
        raise UsageError(f"zero-shot evaluation needs lm-eval, which is not installed; {LM_EVAL_EXTRA}") from None
    return lm_eval


def lm_eval_version() -> str:
    from importlib import metadata

    return metadata.version("lm_eval")


@dataclass(frozen=True)
class ZeroShotSpec:
    """What one zero-shot evaluation runs.

    Attributes:
        tasks: lm-eval task names, in report order.
        limit: documents per task (the first K, as lm-eval's ``--limit``); None evaluates all.
        task_limits: (task, K) pairs that override `limit` for single tasks: a WikiText article
            is ~30x longer than a last-word passage, so one cap does not fit both.
        max_length: the model's window in tokens (lm-eval rolls longer documents through it).
        batch_size: requests per forward pass.
        bootstrap_iters: resamples for the stderr of perplexity-type metrics.
    """

    tasks: tuple[str, ...]
    limit: int | None = None
    task_limits: tuple = ()
    max_length: int = DEFAULT_MAX_LENGTH
    batch_size: int = DEFAULT_BATCH_SIZE
    bootstrap_iters: int = DEFAULT_BOOTSTRAP_ITERS

    def __post_init__(self):
        # Tuples whatever the caller passed, so the spec stays hashable (cases are memo keys).
        tasks = parse_tasks(self.tasks) if isinstance(self.tasks, str) else tuple(self.tasks)
        object.__setattr__(self, "tasks", tasks)
        object.__setattr__(self, "task_limits", tuple((t, k) for t, k in self.task_limits))
        if not self.tasks:
            raise UsageError("no zero-shot tasks given; name at least one, e.g. --tasks wikitext,wikitext_lastword")
        if len(set(self.tasks)) != len(self.tasks):
            raise UsageError(f"zero-shot tasks repeat a name: {','.join(self.tasks)}; give each task once")
        if self.limit is not None and self.limit < 1:
            raise UsageError(f"--limit must be at least 1 document per task, got {self.limit}")
        for task, k in self.task_limits:
            if task not in self.tasks:
                raise UsageError(f"a limit is given for {task!r}, which is not among the tasks {','.join(self.tasks)}")
            if k is not None and k < 1:
                raise UsageError(f"the limit for {task} must be at least 1 document, got {k}")
        if self.max_length < 2:
            raise UsageError(f"max_length must be at least 2 tokens, got {self.max_length}")
        if self.batch_size < 1:
            raise UsageError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.bootstrap_iters < 0:
            raise UsageError(f"--bootstrap-iters must be 0 or more, got {self.bootstrap_iters}")


    def limit_of(self, task: str) -> int | None:
        """The document cap of `task` (None: all of its documents)."""
        return dict(self.task_limits).get(task, self.limit)


def parse_tasks(text: str) -> tuple[str, ...]:
    """``"wikitext, wikitext_lastword"`` -> ``("wikitext", "wikitext_lastword")``."""
    return tuple(t.strip() for t in str(text).split(",") if t.strip())


@contextlib.contextmanager
def _quiet(verbose: bool = False):
    """Keep lm-eval's warnings off stderr, where prunebench's errors must be its only line.

    lm-eval warns about things that are intended here: the shipped ``wikitext`` overriding its
    own, and ``custom_dataset`` kwargs. ``verbose`` lets it log at INFO instead.
    """
    log = logging.getLogger("lm_eval")
    level = log.level
    log.setLevel(logging.INFO if verbose else logging.ERROR)
    # lm-eval also print()s ("bootstrapping for stddev") and draws tqdm bars: stdout belongs
    # to `--json`, so prints go to stderr, and without `verbose` the bars go nowhere.
    chatter = sys.stderr if verbose else io.StringIO()
    try:
        with contextlib.redirect_stdout(sys.stderr), contextlib.redirect_stderr(chatter):
            yield
    finally:
        log.setLevel(level)


def task_manager(tasks, root):
    """lm-eval's TaskManager with the shipped tasks; lm-eval's own index only when needed.

    Indexing lm-eval's ~15k task YAMLs takes 5-15 s, so a run of only offline tasks skips it.
    """
    from lm_eval.tasks import TaskManager

    only_local = all(t in LOCAL_TASKS for t in tasks)
    return TaskManager(include_path=str(TASKS_DIR), include_defaults=not only_local,
                       metadata={"data_dir": str(root)} if root is not None else None)


def _hf_offline() -> bool:
    return os.environ.get("HF_DATASETS_OFFLINE") == "1" or os.environ.get("HF_HUB_OFFLINE") == "1"


@dataclass
class TaskSet:
    """Validated tasks with the lm-eval TaskManager that resolves them.

    Build it with `prepare` before loading a model: every bad name, and every hub task that
    cannot be reached, fails here with one line.
    """

    spec: ZeroShotSpec
    data_dir: str | None
    manager: object = field(repr=False)


def prepare(spec: ZeroShotSpec, data_dir=None) -> TaskSet:
    """Check that lm-eval is installed, every task exists, and its data can be read.

    The shipped offline tasks need the local data directory; other tasks need the hub, or
    ``HF_DATASETS_OFFLINE=1`` with a warm HF datasets cache.
    """
    require_lm_eval()
    from bench.sources.data import hub_reachable, resolve_data_dir

    root = resolve_data_dir(data_dir)
    offline_names = ", ".join(LOCAL_TASKS)
    with _quiet():
        manager = task_manager(spec.tasks, root)
    known = set(manager.all_tasks)
    for task in spec.tasks:
        if task not in known:
            raise UsageError(f"unknown zero-shot task {task!r}{did_you_mean(task, sorted(known))}; "
                             f"offline tasks: {offline_names}; `lm_eval ls tasks` lists lm-eval's")
    local = [t for t in spec.tasks if t in LOCAL_TASKS]
    hub = [t for t in spec.tasks if t not in LOCAL_TASKS]
    if local and root is None:
        raise UsageError(f"tasks {', '.join(local)} read the local data directory; pass --data-dir or set "
                         f"PRUNEBENCH_DATA_DIR to a directory laid out like shared/data")
    if hub and not _hf_offline() and not hub_reachable():
        raise UsageError(f"task {hub[0]} needs the Hugging Face hub, which is unreachable; offline tasks: "
                         f"{offline_names} (with a warm HF datasets cache, set HF_DATASETS_OFFLINE=1)")
    try:
        # Loading builds each task's dataset: local files are read and verified, hub data
        # comes from the HF cache or the network. Failing here costs no model load.
        with _quiet():
            manager.load(list(spec.tasks))
    except UsageError:
        raise
    except Exception as exc:  # noqa: BLE001 - lm-eval/datasets raise many kinds for a missing dataset
        if not hub:
            raise
        raise UsageError(f"task {','.join(hub)} could not load its dataset offline ({type(exc).__name__}); "
                         f"offline tasks: {offline_names}; run online or warm the HF datasets cache") from None
    return TaskSet(spec, None if root is None else str(root), manager)


def model_positions(model) -> int:
    """The positions the model's config allows (DEFAULT_MAX_LENGTH when it does not say)."""
    return int(getattr(model.config, "max_position_embeddings", None) or DEFAULT_MAX_LENGTH)


def default_window(model) -> int:
    """The model's positions, at most DEFAULT_MAX_LENGTH (lm-eval's own default window)."""
    return min(model_positions(model), DEFAULT_MAX_LENGTH)


def with_model_window(tasks: TaskSet, model) -> TaskSet:
    """`tasks` with max_length set from `model` (`default_window`)."""
    return replace(tasks, spec=replace(tasks.spec, max_length=default_window(model)))


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")


def require_tokenizer_files(spec: str) -> None:
    """Refuse a save_pretrained directory without tokenizer files.

    `bench.sources.models` gives such a directory the byte-level test tokenizer; for a zero-shot score
    that would silently measure the wrong thing, so it is an error here.
    """
    from pathlib import Path

    path = Path(spec).expanduser()
    if path.is_dir() and (path / "config.json").is_file() and not any((path / f).is_file() for f in TOKENIZER_FILES):
        raise UsageError(f"model {spec} has no tokenizer (none of {', '.join(TOKENIZER_FILES)}); save the "
                         f"tokenizer into it with tokenizer.save_pretrained(DIR)")


def evaluate(model, tokenizer, tasks: TaskSet, *, progress: bool = False) -> dict:
    """Run the tasks on the in-memory `model` and return the record's ``zeroshot`` entry.

    Args:
        model: a causal LM (pruned or post-trained), used as it is and left in eval mode.
        tokenizer: the model's tokenizer; required, lm-eval would otherwise go to the hub.
        tasks: from `prepare`.
        progress: let lm-eval log its progress.

    Returns:
        ``{"results": [...], "protocol": {...}, "wall_s": ...}`` where each result has task,
        metric, value, stderr, samples (evaluated), samples_total, limit, task_version and
        lm_eval_version.
    """
    require_lm_eval()
    if tokenizer is None:
        raise UsageError("the model has no tokenizer; zero-shot evaluation needs one (a save_pretrained "
                         "directory must contain its tokenizer files)")
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM

    spec = tasks.spec
    was_training = model.training
    model.eval()
    t0, cpu0 = time.perf_counter(), time.process_time()
    try:
        with _quiet(progress):
            lm = HFLM(pretrained=model, tokenizer=tokenizer, max_length=spec.max_length,
                      batch_size=spec.batch_size)
            selection = {"limit": spec.limit}
            if spec.task_limits:
                # Per-task caps go through lm-eval's `samples` (document indices per task): the
                # first K documents, which is what `limit` selects.
                loaded = tasks.manager.load(list(spec.tasks))["tasks"]
                selection = {"samples": {
                    name: list(range(min(spec.limit_of(name), len(task.eval_docs))))
                    for name, task in loaded.items() if spec.limit_of(name) is not None}}
            out = simple_evaluate(model=lm, tasks=list(spec.tasks), task_manager=tasks.manager,
                                  bootstrap_iters=spec.bootstrap_iters, log_samples=False, **selection)
    finally:
        model.train(was_training)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    param = next(model.parameters())
    return {
        "results": flatten(out, spec.tasks, {t: spec.limit_of(t) for t in spec.tasks}),
        "protocol": {"harness": "lm-eval", "lm_eval_version": lm_eval_version(), "num_fewshot": 0,
                     "max_length": spec.max_length, "batch_size": spec.batch_size, "limit": spec.limit,
                     "task_limits": dict(spec.task_limits),
                     "bootstrap_iters": spec.bootstrap_iters, "dtype": str(param.dtype).replace("torch.", ""),
                     "device": str(param.device), "data_dir_source": "local" if tasks.data_dir else None},
        # CPU seconds beside wall seconds: on a shared machine the wall time mostly measures
        # the other tenants; CPU time / cores is what the run costs on an idle one.
        "wall_s": wall, "cpu_s": cpu,
    }


def flatten(out: dict, task_names, limits: dict | None = None) -> list[dict]:
    """lm-eval's results dict as one row per (task, metric), in `task_names` order.

    lm-eval keys metrics as ``"<metric>,<filter>"`` with a sibling ``"<metric>_stderr,<filter>"``
    that is ``"N/A"`` where it has no stderr (recorded as None).
    """
    version = lm_eval_version()
    rows = []
    for task in task_names:
        metrics = out["results"][task]
        n = out.get("n-samples", {}).get(task, {})
        higher = out.get("higher_is_better", {}).get(task, {})
        for key, value in metrics.items():
            if "," not in key or "_stderr," in key:
                continue
            metric, filt = key.split(",", 1)
            stderr = metrics.get(f"{metric}_stderr,{filt}")
            rows.append({
                "task": task, "metric": metric, "filter": filt, "value": value,
                "stderr": stderr if isinstance(stderr, (int, float)) else None,
                "higher_is_better": higher.get(metric),
                "samples": n.get("effective"), "samples_total": n.get("original"),
                "limit": (limits or {}).get(task),
                "task_version": out.get("versions", {}).get(task), "lm_eval_version": version,
            })
    return rows


def value_of(entry: dict | None, task: str, metric: str | None = None):
    """The value of `metric` (default: the task's primary one) in a ``zeroshot`` record entry."""
    metric = metric or primary_metric(task)
    for row in (entry or {}).get("results", []):
        if row["task"] == task and row["metric"] == metric:
            return row
    return None
