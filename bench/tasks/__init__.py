"""lm-eval task configs shipped with prunebench, for zero-shot evaluation offline.

The YAML files here are ordinary lm-eval task configs: lm-eval's own CLI runs them with
``--include_path`` pointing at this directory (see docs/evaluation.md). Their data
comes from the local data directory through `bench.tasks.local`, which lm-eval calls as the
task's ``custom_dataset`` with the task metadata (``data_dir``) as keyword arguments.
"""

from pathlib import Path

TASKS_DIR = Path(__file__).resolve().parent

# Task names defined by the YAML files in TASKS_DIR (checked against them by the tests).
LOCAL_TASKS = ("wikitext", "wikitext_lastword")
