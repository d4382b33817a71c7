"""Post-training a case: continual pre-training with a loss trajectory (DESIGN.md section 5).

`posttrain(model, tokenizer, recipe, env)` trains every parameter (or LoRA adapters) of a model
on the post-training slice of a corpus (`bench.training.corpus`) with the trainer
(`bench.training.trainer.train`), in this process or in several (`bench.training.distributed`).
It reads the slices, measures the held-out loss on a fixed prefix of the held-out slice (the
same windows for every case, and L0 the same way: `initial_loss`), adds LoRA adapters and merges
them back, and returns what the record keeps. How the loop counts tokens, keeps N:M masks,
stops on a divergence and resumes from a saved state is the trainer's (`bench.training.trainer`).
"""

from __future__ import annotations

import torch

from bench.env import RunEnv
from bench.errors import UsageError
from bench.training import corpus as corpus_mod
from bench.training.engine import MASTER_DTYPE, _device, heldout_loss
from bench.training.recipe import Recipe
from bench.training.trainer import add_lora, train


def training_windows(tokenizer, recipe: Recipe, env: RunEnv) -> torch.Tensor:
    """(n, seq_len) windows of the recipe's training slice."""
    from bench.evaluation.perplexity import windows

    stream = corpus_mod.token_stream(tokenizer, recipe.slices, recipe.train_slice, env.data_dir, recipe.max_documents,
                                     cache_dir=env.cache_dir)
    return windows(stream, recipe.seq_len)


def heldout_windows(tokenizer, recipe: Recipe, env: RunEnv) -> torch.Tensor:
    """The fixed held-out windows: the first `eval_windows` of the held-out slice."""
    from bench.evaluation.perplexity import windows

    stream = corpus_mod.token_stream(tokenizer, recipe.slices, "heldout", env.data_dir, cache_dir=env.cache_dir)
    win = windows(stream, recipe.seq_len)
    if win.shape[0] < recipe.eval_windows:
        raise UsageError(f"the held-out slice has only {win.shape[0]} windows of {recipe.seq_len} tokens, fewer "
                         f"than eval_windows={recipe.eval_windows}; lower eval_windows or raise heldout_frac")
    return win[: recipe.eval_windows]


def initial_loss(model, tokenizer, recipe: Recipe, env: RunEnv) -> float:
    """L0: `model`'s held-out loss on the recipe's fixed windows, measured as every checkpoint is."""
    return heldout_loss(model, heldout_windows(tokenizer, recipe, env), recipe.eval_batch_size, recipe)


def posttrain(model, tokenizer, recipe: Recipe, env: RunEnv, *, masks: dict | None = None,
              checkpoint_eval=None, state_dir=None, state=None, desc: str = "post-train",
              teacher=None) -> tuple[torch.nn.Module, dict]:
    """Post-train `model` (in place, except LoRA which returns the merged model).

    With ``recipe.processes > 1`` the training runs in spawned processes (`bench.training.distributed`),
    which is checked against the machine before any data is read.

    Args:
        env: the run's data and cache directories (the corpus and its token streams) and its
            progress, where the phase `desc` shows.
        masks: N:M keep-masks to preserve (from the pruning report); refused with LoRA, whose
            dense low-rank update would break the pattern.
        state_dir: distributed runs without `state` only: where every checkpoint's sharded state
            is saved (all of them kept).
        state: a `bench.training.train_state.Checkpointer` (with ``recipe.state_every``): resumable states,
            the newest kept; its report goes into the record as ``train_state``.
        teacher: a distillation objective's teacher (`bench.training.distill`), frozen and
            unchanged; under LoRA it stays the unpruned model, never the adapted student.
    Returns:
        (the trained model, the record's ``posttrain`` fields: recipe, slices, trajectory,
        initial held-out loss, diverged, counters).
    """
    if masks and recipe.lora:
        raise UsageError("LoRA recovery cannot keep an N:M mask (its low-rank update is dense); use full "
                         "post-training (lora=False) for 2:4 cases")
    if recipe.processes > 1:
        from bench.training import distributed

        backend = distributed.resolve_backend(recipe, _device(model))  # bad input fails before any work
    win = training_windows(tokenizer, recipe, env)
    held = heldout_windows(tokenizer, recipe, env)
    dtype = next(model.parameters()).dtype
    home = _device(model)
    if recipe.processes > 1:
        model.to("cpu")  # the ranks get their copies from here; the parent keeps no GPU memory
    if dtype != MASTER_DTYPE:
        model.to(MASTER_DTYPE)  # float32 master weights; bf16 comes from autocast on CUDA
    if recipe.lora:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(recipe.seed)  # the adapters' initialisation is the recipe seed's
            model = add_lora(model, recipe)
    if recipe.processes > 1:
        result = distributed.run(model, win, recipe, heldout=held, masks=masks, state_dir=state_dir,
                                 progress=env.progress, device=home, state=state, desc=desc, teacher=teacher)
    else:
        result = train(model, win, recipe, heldout=held, masks=masks, checkpoint_eval=checkpoint_eval,
                       progress=env.progress, state=state, desc=desc, teacher=teacher)
    if recipe.lora:
        model = model.merge_and_unload()
    model.to(device=home, dtype=dtype)
    out = {"recipe": recipe.to_dict(), "slices": corpus_mod.slice_info(recipe.slices, env.data_dir),
           "eval_tokens": int(held.numel()), **result.to_dict()}
    if state is not None:
        out["train_state"] = dict(state.report)
    if recipe.processes > 1:
        out["distributed"] = {"processes": recipe.processes, "engine": recipe.engine, "backend": backend,
                              "param_dtype": recipe.param_dtype,
                              "sharded_state": None if state_dir is None else str(state_dir)}
    return model.eval(), out
