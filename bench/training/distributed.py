"""Post-training on torch.distributed: DDP or FSDP2, in processes the suite spawns for one case.

A recipe with ``processes > 1`` sends `bench.training.posttrain.posttrain` here. `run` checks the request
against the machine (one clear line for a bad one, before anything starts), writes the model,
windows and masks to a job directory, spawns one process per rank (``torch.multiprocessing``,
``spawn``), and reads back what rank 0 wrote: the trajectory and a full state dict.

Each rank runs the ordinary loop (`bench.training.trainer.train`) with an engine that says how the
processes share the work, so the loop reads like a single-device one:

* every rank walks the same data order; micro-batch k of a step runs on rank k mod world, and
  the engine averages gradients over ranks, so a step sees ``batch_tokens`` tokens exactly as
  in one process and the trajectory matches it to float32 rounding;
* ``ddp``: `DistributedDataParallel`, every rank holds the whole model;
* ``fsdp``: FSDP2, ``fully_shard`` on each decoder layer, then on the root; parameters,
  gradients and AdamW state are sharded (dim 0 of every weight). N:M masks are sharded the same
  way, and because the 2:4 groups run along the input dimension (dim 1), every group stays on one
  rank and the pattern stays exact;
* only rank 0 writes the result and the full state dict; with a ``state_dir``, each checkpoint
  also saves the sharded model and optimizer state through ``torch.distributed.checkpoint``
  (every rank writes its own shards, as DCP requires);
* with a `bench.training.train_state.Checkpointer` (``Recipe.state_every``) the sharded state is the
  resumable one: every K checkpoints the model and AdamW state go through DCP
  (``get_state_dict``), each rank's RNG and the loop's position beside them, and only the newest
  state is kept; a resumed run loads them back (``set_state_dict``) on every rank and continues
  with the same data position and draws, so its trajectory is the uninterrupted one's.

Held-out losses are measured on every rank over all the held-out windows (FSDP's forward is a
collective, so every rank must run the same batches); the FSDP root's parameters are gathered
only inside its own forward, so it takes the full-logits loss path (`bench.evaluation.perplexity`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import tempfile
from pathlib import Path

import torch

from bench.children import die_with_parent
from bench.errors import UsageError
from bench.progress import QUIET, Progress, relayed
from bench.training.engine import SingleProcess
from bench.training.recipe import Recipe
from bench.training.trainer import TrainResult, train

FSDP_SUPPORTED = {("cpu", "gloo"), ("cuda", "nccl")}


def resolve_backend(recipe: Recipe, device: torch.device) -> str:
    """The process-group backend for the recipe on `device`, after checking the request.

    Raises:
        UsageError: torch without distributed support; more processes than devices; a CUDA-only
            option (nccl) on a machine without CUDA; FSDP on a backend it does not run on here.
    """
    if not torch.distributed.is_available():
        raise UsageError("this torch build has no torch.distributed; set processes=1")
    if device.type == "cuda":
        have = torch.cuda.device_count()
        if recipe.processes > have:
            raise UsageError(f"processes={recipe.processes} but {have} CUDA device(s) are visible; one process per "
                             f"GPU: set processes={have} or less (or CUDA_VISIBLE_DEVICES)")
    else:
        have = os.cpu_count() or 1
        if recipe.processes > have:
            raise UsageError(f"processes={recipe.processes} but this machine has {have} CPU core(s); set "
                             f"processes={have} or less")
    backend = recipe.backend
    if backend == "auto":
        backend = "nccl" if device.type == "cuda" else "gloo"
    if backend == "nccl" and not torch.cuda.is_available():
        raise UsageError("backend='nccl' is CUDA-only and this machine has no CUDA device; use backend='gloo' "
                         "(or 'auto') to train on CPU processes")
    if recipe.engine == "fsdp" and (device.type, backend) not in FSDP_SUPPORTED:
        raise UsageError(f"FSDP runs on gloo with CPU tensors or nccl with CUDA ones, not {backend} on "
                         f"{device.type}; use backend='auto' or engine='ddp'")
    return backend


# --------------------------------------------------------------------------- engines


class DDPEngine(SingleProcess):
    """Every rank holds the model; DistributedDataParallel averages gradients after the step's last micro-batch."""

    def __init__(self, mesh, device: torch.device, recipe: Recipe, state_dir: str | None = None):
        self.mesh, self.device, self.recipe = mesh, device, recipe
        self.state_dir = Path(state_dir) if state_dir else None
        self.rank, self.world = torch.distributed.get_rank(), torch.distributed.get_world_size()

    def wrap(self, model):
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids, process_group=self.mesh.get_group())

    def inner(self, model):
        return getattr(model, "module", model)

    def place_teacher(self, teacher):
        """The distillation teacher, placed like the student: every rank holds it, frozen."""
        return teacher.to(self.device).eval().requires_grad_(False)

    def grad_sync(self, model, last: bool):
        return contextlib.nullcontext() if last else model.no_sync()

    def all_sum(self, t: torch.Tensor) -> torch.Tensor:
        t = t.clone()
        torch.distributed.all_reduce(t, group=self.mesh.get_group())
        return t

    # -- collectives the training state (`bench.training.train_state.Checkpointer`) needs

    def barrier(self) -> None:
        torch.distributed.barrier(group=self.mesh.get_group())

    def agree(self, ok: bool) -> bool:
        flag = torch.tensor([int(ok)], device=self.device)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MIN, group=self.mesh.get_group())
        return bool(flag.item())

    def write_weights(self, model, optimizer, folder: Path) -> None:
        """Sharded model + AdamW state (DCP): every rank writes its own part into `folder`."""
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import get_state_dict

        msd, osd = get_state_dict(model, optimizer)
        dcp.save({"model": msd, "optim": osd}, checkpoint_id=str(folder))

    def read_weights(self, model, optimizer, folder: Path) -> str | None:
        """Load a `write_weights` state into the wrapped model and optimizer (collective).

        DCP checks every key against the checkpoint while planning, before it reads a tensor, so
        a state of another model fails with nothing changed. A file damaged after planning (the
        state was complete when renamed into place, so only outside damage does this) leaves the
        weights half loaded: that is raised, not ignored.
        """
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

        msd, osd = get_state_dict(model, optimizer)  # initialises AdamW's state with an lr-0 step
        try:
            reader = dcp.FileSystemReader(str(folder))
            saved = reader.read_metadata().state_dict_metadata
        except Exception as exc:
            return f"no readable DCP metadata ({exc.__class__.__name__})"
        missing = [k for k in msd if f"model.{k}" not in saved]
        if missing:
            return f"the sharded state holds another model's weights (no {missing[0]!r})"
        try:
            dcp.load({"model": msd, "optim": osd}, checkpoint_id=str(folder))
        except Exception as exc:
            raise RuntimeError(f"the training state in {folder} is damaged and the weights are partly loaded "
                               f"({exc.__class__.__name__}); delete it or rerun without --resume") from exc
        set_state_dict(model, optimizer, model_state_dict=msd, optim_state_dict=osd)
        return None

    def save_state(self, model, optimizer, result: TrainResult) -> None:
        """Sharded model + optimizer state at this checkpoint (DCP), plus the trajectory so far."""
        if self.state_dir is None:
            return
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import get_state_dict

        msd, osd = get_state_dict(model, optimizer)
        dcp.save({"model": msd, "optim": osd}, checkpoint_id=str(self.state_dir / f"step-{result.steps:08d}"))
        if self.rank == 0:  # the loop's own counters, for a resume to continue the trajectory
            torch.save(dataclasses.asdict(result), self.state_dir / f"step-{result.steps:08d}" / "train_state.pt")

    def full_state_dict(self, model) -> dict:
        """The whole model's state on rank 0 (CPU tensors); empty on the others."""
        if self.rank != 0:
            return {}
        return {k: v.detach().cpu() for k, v in self.inner(model).state_dict().items()}


class FSDPEngine(DDPEngine):
    """FSDP2: ``fully_shard`` on each decoder layer, then the root; everything sharded on dim 0."""

    def wrap(self, model):
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

        policy = MixedPrecisionPolicy(
            param_dtype=torch.bfloat16 if self.recipe.param_dtype == "bfloat16" else None,
            reduce_dtype=torch.float32)
        for layer in model.get_decoder().layers:
            fully_shard(layer, mesh=self.mesh, mp_policy=policy)
        fully_shard(model, mesh=self.mesh, mp_policy=policy)
        return model

    def inner(self, model):
        return model

    def place_teacher(self, teacher):
        """The teacher sharded like the student: ``fully_shard`` on each decoder layer. Its
        embeddings, final norm and LM head (tied to the embeddings in the nano zoo, and used
        beside the student's inside the student's forward) stay whole on every rank."""
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

        teacher = teacher.to(self.device).eval().requires_grad_(False)
        policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16 if self.recipe.param_dtype == "bfloat16" else None)
        for layer in teacher.get_decoder().layers:
            fully_shard(layer, mesh=self.mesh, mp_policy=policy)
        return teacher

    def grad_sync(self, model, last: bool):
        model.set_requires_gradient_sync(last)  # reduce-scatter once per step, after the last micro-batch
        return contextlib.nullcontext()

    def local(self, t: torch.Tensor) -> torch.Tensor:
        from torch.distributed.tensor import DTensor

        return t.to_local() if isinstance(t, DTensor) else t

    def shard_like(self, full: torch.Tensor, param) -> torch.Tensor:
        from torch.distributed.tensor import DTensor, distribute_tensor

        if not isinstance(param, DTensor):
            return full
        return distribute_tensor(full, param.device_mesh, param.placements).to_local()

    def scalar(self, t) -> float:
        from torch.distributed.tensor import DTensor

        return float(t.full_tensor() if isinstance(t, DTensor) else t)

    def full_state_dict(self, model) -> dict:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        # Collective: every rank takes part, rank 0 receives the whole model on CPU.
        return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


ENGINES = {"ddp": DDPEngine, "fsdp": FSDPEngine}


# --------------------------------------------------------------------------- spawning


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, job: str, port: int, world: int, backend: str, device_type: str,
            state_dir: str | None, progress: Progress, desc: str) -> None:
    """One rank: join the group, build the engine on an explicit device mesh, train, hand back."""
    from torch.distributed.device_mesh import init_device_mesh

    die_with_parent()  # a killed run takes its ranks with it
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world))
    if device_type == "cpu":  # the ranks share the cores
        torch.set_num_threads(max(1, min(torch.get_num_threads(), (os.cpu_count() or 1) // world)))
        device = torch.device("cpu")
    else:
        device = torch.device("cuda", rank)
        torch.cuda.set_device(device)
    torch.distributed.init_process_group(backend, rank=rank, world_size=world)
    try:
        mesh = init_device_mesh(device_type, (world,))
        spec = torch.load(Path(job) / "job.pt", map_location="cpu", weights_only=False, mmap=True)
        recipe: Recipe = spec["recipe"]
        # FSDP moves each layer to the device as it shards it, so no rank holds the whole model there.
        model = spec["model"] if recipe.engine == "fsdp" else spec["model"].to(device)
        engine = ENGINES[recipe.engine](mesh, device, recipe, state_dir)
        teacher = None if spec["teacher"] is None else engine.place_teacher(spec["teacher"])
        result = train(model, spec["windows"], recipe, heldout=spec["heldout"], masks=spec["masks"], teacher=teacher,
                       progress=progress, desc=f"{desc} ({recipe.engine} x{world})",
                       parallel=engine, state=spec["state"])
        state = engine.full_state_dict(model)
        if rank == 0:
            from bench.sources.atomic import atomic_write

            report = None if spec["state"] is None else spec["state"].report
            atomic_write(Path(job) / "result.pt", lambda tmp: torch.save(
                {"result": dataclasses.asdict(result), "state": state, "state_report": report}, tmp))
        torch.distributed.barrier()
    finally:
        torch.distributed.destroy_process_group()


def run(model, windows: torch.Tensor, recipe: Recipe, *, heldout: torch.Tensor | None = None,
        masks: dict | None = None, state_dir: str | os.PathLike | None = None,
        progress: Progress = QUIET, device: torch.device | str | None = None, state=None,
        desc: str = "post-train", teacher=None) -> TrainResult:
    """Train `model` in `recipe.processes` spawned processes; its weights are replaced by the result.

    Args:
        model: float32 master weights (best on the CPU: the ranks read their copies from a file).
        state_dir: where each checkpoint's sharded state goes (None: not saved); all are kept.
        state: a `bench.training.train_state.Checkpointer` for resumable states instead (the newest kept);
            its report comes back from rank 0.
        device: the device type the ranks train on (default: the model's); on CUDA, rank r
            uses cuda:r.
    Returns:
        Rank 0's `TrainResult` (the trajectory of the whole run).
    """
    import torch.multiprocessing as mp

    device = torch.device(device) if device is not None else next(model.parameters()).device
    backend = resolve_backend(recipe, device)
    if state_dir is not None:
        Path(state_dir).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="prunebench-dist-") as job:
        torch.save({"model": model, "windows": windows, "heldout": heldout, "masks": masks, "recipe": recipe,
                    "teacher": teacher,
                    "state": state}, Path(job) / "job.pt")
        try:
            with relayed(progress, mp.get_context("spawn")) as relay:  # rank 0's phase, shown here
                mp.start_processes(_worker, nprocs=recipe.processes, join=True, start_method="spawn",
                                   args=(job, _free_port(), recipe.processes, backend, device.type,
                                         None if state_dir is None else str(state_dir), relay, desc))
        except mp.ProcessRaisedException as exc:
            raise RuntimeError(f"a post-training process failed ({recipe.engine}, {recipe.processes} processes):\n"
                               f"{exc}") from None
        out = torch.load(Path(job) / "result.pt", map_location="cpu", weights_only=False)
    if state is not None:
        state.report = out["state_report"]
    missing, unexpected = model.load_state_dict(out["state"], strict=False)
    tied = set(getattr(model, "_tied_weights_keys", None) or ())
    if unexpected or set(missing) - tied:
        raise RuntimeError(f"the distributed run's state dict does not fit the model: missing {missing[:3]}, "
                           f"unexpected {unexpected[:3]}")
    return TrainResult(**out["result"])
