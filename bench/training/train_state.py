"""Resumable training state: what a killed post-training run needs to continue bit for bit.

With ``Recipe.state_every = K`` the loop (`bench.training.trainer.train`) saves, every K checkpoints:

* the model and the AdamW state (one file in one process; sharded through
  ``torch.distributed.checkpoint`` under DDP/FSDP, see `bench.training.distributed`);
* the loop's position: optimizer steps done (the LR schedule is a function of the step, so the
  step is the scheduler's whole state), the data epoch and cursor (the window order of an epoch
  is a function of seed and epoch), and the trajectory and counters so far;
* the RNG the loop draws from (dropout, LoRA dropout): torch's CPU generator and, on CUDA, the
  device's; the loop uses no python or numpy randomness, so those are not saved.

A state is one directory ``state-<step>`` under the store's root. It is written as
``.partial-<step>`` and renamed once complete, with ``meta.json`` written last, so a kill during
a save leaves a partial directory that is never read (and is removed by the next save). Only the
newest state is kept. Whether a state may be used is decided twice: by the caller from the
identity it gave the store (`bench.harness.runner`: the case's fingerprint and provenance), and by the
loop from what it can check itself (recipe, world size, engine, windows, masks). A state that
fails either check, or does not load, is ignored with a printed reason and the run starts fresh.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

FORMAT = 1
PREFIX = "state-"
PARTIAL = ".partial-"
META = "meta.json"


def say(message: str) -> None:
    """A resume decision the user should see (stderr; pytest shows it with -s or on failure)."""
    print(f"prunebench: {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- what identifies a run's inputs


def _sample_digest(tensors) -> str:
    """sha256 over a strided sample of each tensor (at most ~1M elements each): cheap at 8B scale,
    and enough to tell two different windows tensors or mask sets apart."""
    h = hashlib.sha256()
    for t in tensors:
        flat = t.detach().reshape(-1)
        stride = max(1, flat.numel() // (1 << 20))
        h.update(str((tuple(t.shape), str(t.dtype))).encode())
        h.update(flat[::stride].cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def inputs_identity(recipe, windows: torch.Tensor, masks: dict | None, world: int) -> dict:
    """What the loop itself checks before it continues from a state."""
    return {"recipe": json.loads(json.dumps(recipe.to_dict(), default=str)), "world": world,
            "engine": recipe.engine if world > 1 else "single",
            "windows": _sample_digest([windows]),
            "masks": None if not masks else _sample_digest([masks[k] for k in sorted(masks)])}


def _differences(saved: dict, now: dict) -> list[str]:
    return [f"{k} {saved.get(k)!r} -> {now.get(k)!r}" if k in ("world", "engine") else f"{k} changed"
            for k in sorted(set(saved) | set(now)) if saved.get(k) != now.get(k)]


# --------------------------------------------------------------------------- RNG


def rng_snapshot(device: torch.device) -> dict:
    snap = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        snap["cuda"] = torch.cuda.get_rng_state(device)
    return snap


def rng_restore(snap: dict, device: torch.device) -> None:
    torch.set_rng_state(snap["torch"])
    if device.type == "cuda" and "cuda" in snap:
        torch.cuda.set_rng_state(snap["cuda"], device)


# --------------------------------------------------------------------------- the store on disk


@dataclass
class StateStore:
    """The training states of one run under `root` (a case's working area).

    Attributes:
        root: the directory holding ``state-<step>`` (created on the first save).
        every: save at every `every`-th checkpoint.
        identity: what the caller compares before resuming (JSON-ready; kept in meta.json).
    """

    root: Path
    every: int
    identity: dict = field(default_factory=dict)

    def __post_init__(self):
        self.root = Path(self.root)

    def states(self) -> list[Path]:
        """Complete states, newest last."""
        if not self.root.is_dir():
            return []
        return sorted(p for p in self.root.iterdir() if p.is_dir() and p.name.startswith(PREFIX))

    def leftovers(self) -> bool:
        return self.root.is_dir() and any(self.root.iterdir())

    def clear(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def latest(self) -> tuple[Path | None, dict | None, str | None]:
        """(newest state, its meta, None), or (None, None, why there is no usable one; None if none)."""
        states = self.states()
        if not states:
            return None, None, None
        path = states[-1]
        try:
            meta = json.loads((path / META).read_text())
        except (OSError, ValueError) as exc:
            return None, None, f"{path.name} has no readable {META} ({exc.__class__.__name__})"
        if meta.get("format") != FORMAT:
            return None, None, f"{path.name} is format {meta.get('format')!r}, this prunebench reads {FORMAT}"
        return path, meta, None

    # -- writing (the loop calls these through `Checkpointer`)

    def partial(self, step: int) -> Path:
        return self.root / f"{PARTIAL}{step:08d}"

    def begin(self, step: int) -> Path:
        """An empty partial directory for the state after `step` (a stale one from a kill is removed)."""
        tmp = self.partial(step)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        return tmp

    def commit(self, step: int, meta: dict) -> Path:
        """Write meta.json last, rename the partial directory into place, drop every older state."""
        tmp = self.partial(step)
        files = [f for f in tmp.rglob("*") if f.is_file()]
        for path in files:  # on disk before the rename, so not even a power cut leaves a complete-looking state
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())
        meta = {"format": FORMAT, "step": step, "identity": self.identity, **meta,
                "bytes": sum(f.stat().st_size for f in files)}
        with open(tmp / META, "w") as f:
            json.dump(meta, f, indent=1, default=str)
            f.flush()
            os.fsync(f.fileno())
        final = self.root / f"{PREFIX}{step:08d}"
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        for old in self.root.iterdir():  # older states and partial leftovers of a killed save
            if old == final:
                continue
            if old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
            else:
                old.unlink(missing_ok=True)
        return final


# --------------------------------------------------------------------------- the loop's side


@dataclass
class Resume:
    """Where a restored run continues: its counters and trajectory, data position and RNG."""

    result: dict
    epoch: int
    cursor: int
    rng: dict
    wall_s: float
    path: Path


@dataclass
class Checkpointer:
    """Saves the loop's state every `store.every` checkpoints and restores it at the start.

    Attributes:
        store: where states go.
        resume_from: a state the caller accepted (its identity matched); None: start fresh.
        report: what happened, for the record: saves, seconds spent saving, bytes, resume.
    """

    store: StateStore
    resume_from: Path | None = None
    report: dict = field(default_factory=dict)

    def __post_init__(self):
        self.report = {"every": self.store.every, "dir": str(self.store.root), "saves": 0, "save_s": 0.0,
                       "bytes": None, "resumed_from": None, "ignored": None, **self.report}

    def ignore(self, reason: str, loud: bool = True) -> None:
        self.report["ignored"] = reason
        if loud:
            say(f"training state in {self.store.root} ignored: {reason}; starting fresh")

    def restore(self, model, optimizer, par, ident: dict) -> Resume | None:
        """Load the accepted state into `model` and `optimizer` (collective under DDP/FSDP).

        Every check runs before anything is changed, and the ranks agree: if any rank cannot
        use the state, none does, and the run starts fresh.
        """
        path, why = self.resume_from, None
        if path is None:
            return None
        loop = None
        try:
            meta = json.loads((path / META).read_text())
            diff = _differences(meta.get("inputs", {}), ident)
            if diff:
                why = "different inputs: " + ", ".join(diff)
            else:
                loop = torch.load(path / f"loop-{par.rank}.pt", map_location="cpu", weights_only=False)
        except Exception as exc:  # a state is an optimisation: any damage means start fresh
            why = f"{path.name} does not load ({exc.__class__.__name__}: {str(exc)[:120]})"
        ok = par.agree(why is None)  # loading the weights is collective: all ranks or none
        if ok:
            why = par.read_weights(model, optimizer, path)
            ok = par.agree(why is None)
        if not ok:
            self.ignore(why or "another process could not load its part", loud=par.rank == 0)
            return None
        self.report["resumed_from"] = {"step": loop["result"]["steps"], "tokens": loop["result"]["tokens"],
                                       "dir": path.name}
        if par.rank == 0:
            say(f"resuming post-training from {path} (step {loop['result']['steps']}, "
                f"{loop['result']['tokens']:,} tokens)")
        return Resume(loop["result"], loop["epoch"], loop["cursor"], loop["rng"], loop["wall_s"], path)

    def due(self, checkpoints: int) -> bool:
        return checkpoints % self.store.every == 0

    def save(self, model, optimizer, par, result, *, epoch: int, cursor: int, rng: dict, wall_s: float,
             ident: dict) -> None:
        """The state after this checkpoint, atomically (collective under DDP/FSDP)."""
        t0 = time.perf_counter()
        step = result.steps
        if par.rank == 0:
            self.store.begin(step)
        par.barrier()
        tmp = self.store.partial(step)
        par.write_weights(model, optimizer, tmp)
        torch.save({"result": asdict(result), "epoch": epoch, "cursor": cursor, "rng": rng, "wall_s": wall_s},
                   tmp / f"loop-{par.rank}.pt")
        par.barrier()  # every rank's files are in place before rank 0 declares the state complete
        if par.rank == 0:
            final = self.store.commit(step, {"tokens": result.tokens, "checkpoints": len(result.trajectory),
                                             "inputs": ident})
            self.report["bytes"] = json.loads((final / META).read_text())["bytes"]
        par.barrier()
        self.report["saves"] += 1
        self.report["save_s"] += time.perf_counter() - t0
