"""How much memory a case needs, from its model's config alone, and whether the device has it.

Checked for every selected case before the first one runs (`bench.harness.preflight`), so an 8B model
with full post-training on a 24 GB machine is one line at the start, not an out-of-memory kill
an hour in. The estimate counts what the runner holds at its peak (`bench.harness.runner`,
`bench.training.posttrain`), from exact parameter counts on the meta device (`bench.studies.params`):

* the dense model in the load dtype (float32 on CPU, bf16 on CUDA): the runner keeps it for the
  next case of the same model;
* a pruned copy in the load dtype (pruning methods; an N:M copy keeps dense tensors);
* post-training a copy of the model it measures, which training holds in float32 (master
  weights, `bench.training.engine.MASTER_DTYPE`):
  - full-parameter: 4 bytes of weight, 4 of gradient and 8 of AdamW moments (exp_avg,
    exp_avg_sq) per parameter, 16 in all; FSDP shards this over ``processes``, DDP does not;
  - LoRA: 4 bytes per frozen weight, plus 16 per adapter parameter (rank x (in + out) of each
    adapted projection).

Activations are not counted (they depend on the micro-batch and gradient checkpointing), so a
case refused here cannot fit, while one accepted can still run short of memory.

Capacity: on CUDA the free memory of the device(s) the case uses (post-training: the device, or
the first ``processes`` GPUs; evaluation only: every visible GPU plus the host memory an
accelerate device_map offloads to); on CPU the kernel's MemAvailable.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from bench.errors import UsageError

GiB = 1 << 30
MASTER_BYTES = 4  # float32 master weights while training
FULL_TRAIN_BYTES = 4 + 4 + 8  # weight, gradient, two AdamW moments, all float32
ADAPTER_BYTES = 16  # a LoRA parameter trains like a full one


@dataclass(frozen=True)
class Need:
    """A case's memory need in bytes, by part (see the module docstring)."""

    case_id: str
    mode: str  # "eval", "full" or "lora"
    dtype: torch.dtype  # the load dtype
    base: int
    pruned: int = 0
    training: int = 0  # per process
    processes: int = 1
    engine: str = "ddp"
    teacher: int = 0  # a distillation teacher held beside the student: in the load dtype, per process
    teacher_shared: bool = True  # the teacher is the unpruned model the runner holds anyway (`base`)

    def total(self, device_type: str) -> int:
        """What one device holds (CUDA), or the machine (CPU: every process shares its memory).

        A teacher in the training process(es): one that is the runner's own unpruned model costs
        nothing more in one process, but a copy in every distributed process (a shard of one
        under FSDP); a named teacher costs its weights in the runner and in the processes."""
        split = self.processes if self.engine == "fsdp" else 1
        per_process = self.training // split
        teacher_ranks = (self.teacher // split) if self.processes > 1 else (0 if self.teacher_shared else self.teacher)
        teacher_parent = 0 if self.teacher_shared or self.processes == 1 else self.teacher
        if device_type == "cuda":
            return self.base + self.pruned + per_process + teacher_ranks + teacher_parent
        return self.base + self.pruned + (per_process + teacher_ranks) * self.processes + teacher_parent

    def parts(self) -> str:
        dtype = str(self.dtype).replace("torch.", "")
        out = [f"weights {gib(self.base)} {dtype}"]
        if self.pruned:
            out.append(f"pruned copy {gib(self.pruned)}")
        if self.mode == "full":
            out.append(f"full post-training {gib(self.training)} (float32 weights, gradients and 2 AdamW moments"
                       + (f", sharded over {self.processes} FSDP processes" if self.engine == "fsdp" and
                          self.processes > 1 else "") + ")")
        elif self.mode == "lora":
            out.append(f"LoRA post-training {gib(self.training)} (float32 weights, adapter gradients and AdamW)")
        if self.teacher and (self.processes > 1 or not self.teacher_shared):
            out.append(f"distillation teacher {gib(self.teacher)}" + (" per process" if self.processes > 1 else ""))
        return " + ".join(out)


def gib(nbytes: int) -> str:
    return f"{nbytes / GiB:.1f} GiB"


def case_need(case, counted, dtype: torch.dtype, teacher_params: int | None = None) -> Need:
    """The memory `case` needs, from its parameter counts (`bench.studies.params.Counted`).

    Args:
        teacher_params: the parameters of a distillation recipe's named teacher (None: the
            teacher is the case's own unpruned model, or there is none).
    """
    width = torch.finfo(dtype).bits // 8
    pruned = 0 if case.unpruned else counted.tensors * width
    kept = counted.before if case.unpruned else counted.tensors
    recipe = case.recipe
    if recipe is None:
        return Need(case.id, "eval", dtype, counted.before * width, pruned)
    if recipe.lora:
        training = kept * MASTER_BYTES + recipe.lora_r * counted.lora_io * ADAPTER_BYTES
        mode = "lora"
    else:
        training, mode = kept * FULL_TRAIN_BYTES, "full"
    teacher, shared = 0, True
    if recipe.objective != "ce" and not case.unpruned:
        shared = teacher_params is None
        teacher = (counted.before if shared else teacher_params) * width
    return Need(case.id, mode, dtype, counted.before * width, pruned, training, recipe.processes, recipe.engine,
                teacher, shared)


# --------------------------------------------------------------------------- capacity


@dataclass(frozen=True)
class Capacity:
    nbytes: int
    label: str  # "cpu has 22.9 GiB available (MemAvailable)"


def host_available() -> int:
    """The kernel's MemAvailable (what can be allocated without swapping), in bytes."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")  # macOS and other systems


def capacity(device: torch.device, need: Need) -> Capacity:
    """What the device(s) `need`'s case would run on can hold (see the module docstring)."""
    if device.type != "cuda":
        avail = host_available()
        return Capacity(avail, f"the CPU has {gib(avail)} available (MemAvailable)")
    first = device.index or 0
    if need.mode == "eval":
        free = [torch.cuda.mem_get_info(i)[0] for i in range(torch.cuda.device_count())]
        host = host_available()
        return Capacity(sum(free) + host, f"{len(free)} GPU(s) have {gib(sum(free))} free and the host "
                                          f"{gib(host)} available")
    used = list(range(first, first + need.processes)) if need.processes > 1 else [first]
    free = min(torch.cuda.mem_get_info(i)[0] for i in used)
    name = f"cuda:{first}" if len(used) == 1 else f"each of cuda:{used[0]}-{used[-1]}"
    return Capacity(free, f"{name} has {gib(free)} free")


def refusal(need: Need, cap: Capacity, device_type: str) -> str:
    """The one line that refuses a case that cannot fit."""
    if need.mode == "eval":
        options = ("a machine with more memory (on GPUs the weights load in bf16 and a device_map spreads "
                   "them over every visible GPU and the host), or a smaller model")
    else:
        options = ("LoRA (lora = true in [posttrain]), more processes with FSDP (processes = N, engine = \"fsdp\"), "
                   "no post-training (evaluation only, where a device_map can spread the weights), or a smaller model")
    return (f"case {need.case_id}: needs about {gib(need.total(device_type))} ({need.parts()}, activations not "
            f"counted), but {cap.label}; use {options}")


def check(need: Need, device: torch.device) -> None:
    """Refuse (UsageError) a case whose estimate exceeds what its device(s) can hold."""
    cap = capacity(device, need)
    if need.total(device.type) > cap.nbytes:
        raise UsageError(refusal(need, cap, device.type))


def main(argv=None) -> int:
    """``python -m bench.harness.memory CONFIG.json [--device cuda] [--lora] [--eval-only]``: one line per
    mode, the estimate of an unpruned control case on a model of that config (no weights)."""
    import argparse
    import json
    from pathlib import Path

    from transformers import AutoConfig

    from bench.studies import params
    from bench.studies.cases import Case
    from bench.training.recipe import Recipe

    p = argparse.ArgumentParser(prog="python -m bench.harness.memory", description=main.__doc__)
    p.add_argument("config", help="a model's config.json (e.g. tests/configs/meta-llama--Llama-3.1-8B.json)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cuda", help="load dtype: float32 on cpu, bf16 on cuda")
    args = p.parse_args(argv)
    config = AutoConfig.for_model(**json.loads(Path(args.config).read_text()))
    model = params.meta_model(config)
    n = sum(t.numel() for t in model.parameters())
    counted = params.Counted(n, n, args.config, tensors=n, lora_io=params.lora_features(model))
    dtype = torch.bfloat16 if args.device == "cuda" else torch.float32
    for name, recipe in (("evaluation only", None), ("full post-training", Recipe(lr=2e-5)),
                         ("LoRA post-training", Recipe(lora=True))):
        need = case_need(Case("estimate", args.config, "", "control", recipe=recipe), counted, dtype)
        print(f"{name}: {gib(need.total(args.device))} ({need.parts()}) for {n:,} parameters on {args.device}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
