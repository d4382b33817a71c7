"""What made a record: code, model, data, device, dtype and library versions.

A record's provenance is part of its identity (DESIGN.md section 7). `--resume` reuses a stored
record only when its config *and* its provenance match what this run would produce; otherwise
the case runs again and the reason is one short line (`stale: code 1a2b3c -> 4d5e6f`).

Everything here is computed *before* a case runs, without loading the model, so that a resumed
case costs no model load:

* code: the prunebench version, plus the git commit and a dirty flag (with a digest of the
  uncommitted diff, so two different dirty trees do not look alike) when run from a checkout;
* model: the zoo entry key of a nano model, the sha256 of a GGUF file, a digest of a local
  directory's config and weight files, or the hub id with where it resolved (models directory,
  HF cache, hub) and its revision (`bench.sources.hub`);
* data: the sha256 of every data file the case reads (evaluation, calibration, post-training);
* device and dtype, the CPU kernels' pinned vector ISA (`bench.isa`), and the torch and
  transformers versions.
"""

from __future__ import annotations

import functools
import hashlib
import subprocess
from importlib import metadata
from pathlib import Path

from bench.env import RunEnv
from bench.isa import state as isa_state
from bench.sources.data import file_sha256  # memoised: a session hashes a GGUF file once
from bench.sources.hub import directory_digest
from bench.studies.cases import Case

PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the checkout: bench/harness/provenance.py
# The fields `--resume` compares, in the order a stale line names them.
COMPARED = ("code", "model", "data", "device", "dtype", "isa", "torch", "transformers")


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(PACKAGE_ROOT), *args], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


@functools.lru_cache(maxsize=1)
def code_identity() -> dict:
    """The code that runs: version, and commit + dirty state when this is a git checkout."""
    out = {"prunebench": _version("prunebench"), "commit": None, "dirty": None, "diff_sha256": None}
    top = _git("rev-parse", "--show-toplevel")
    # Only our own checkout counts: an installed copy inside some other repository is not.
    if top is None or Path(top.strip()).resolve() != PACKAGE_ROOT:
        return out
    commit = _git("rev-parse", "HEAD")
    out["commit"] = commit.strip() if commit else None
    # Tracked changes only: untracked files (results, caches) do not change what the code does.
    diff = _git("diff", "HEAD", "--", "bench", "pruners", "fitting", "reports", "pyproject.toml")
    out["dirty"] = bool(diff)
    out["diff_sha256"] = hashlib.sha256(diff.encode()).hexdigest()[:16] if diff else None
    return out


def code_label(code: dict | None) -> str:
    """A short name for a code identity, for stale lines: ``1a2b3c4`` / ``1a2b3c4+dirty.9f8e``."""
    if not code:
        return "unknown"
    if not code.get("commit"):
        return f"v{code.get('prunebench')}"
    label = code["commit"][:7]
    return f"{label}+dirty.{(code.get('diff_sha256') or '')[:4]}" if code.get("dirty") else label


def model_identity(spec: str, env: RunEnv) -> dict:
    """What identifies the weights `spec` resolves to, without loading them."""
    from bench.sources.aliases import smollm2_gguf_path
    from bench.sources.cache import resolve_cache_dir
    from bench.training import zoo, zoo_families

    spec = str(spec)
    if zoo_families.is_nano(spec):
        family, size = zoo_families.parse_spec(spec)
        _, key, _, _ = zoo._entry(family, size, resolve_cache_dir(env.cache_dir), env.data_dir)
        return {"kind": "zoo", "spec": spec, "zoo_key": key}
    if spec == "smollm2-135m":
        path = smollm2_gguf_path()
        return {"kind": "gguf", "spec": spec, "file": path.name, "sha256": file_sha256(path)}
    if spec in ("tiny-llama", "tiny-qwen2"):
        # Random weights from a fixed config and seed: the code identity covers them.
        return {"kind": "tiny", "spec": spec}
    path = Path(spec).expanduser()
    if path.is_file():
        return {"kind": "gguf", "spec": spec, "file": path.name, "sha256": file_sha256(path)}
    if path.is_dir():
        return {"kind": "local", "spec": spec, "weights_sha256": directory_digest(path)}
    from bench.sources import hub

    # A models directory's declared revision or digest, an HF cache snapshot's commit, or
    # (online, nothing local) the commit the hub gives for the pin; offline with no copy is
    # the resolver's one-line error.
    where = hub.resolve(spec, env.models_dir)
    return {"kind": "hub", "spec": spec, **where.identity(), "revision": hub.hub_revision(where)}


def case_datasets(case: Case) -> list[tuple[str, str]]:
    """(dataset, split) of every data file `case` reads."""
    from bench.sources import data
    from bench.sources.calibration import SOURCES as CALIB_SOURCES
    from bench.training import corpus

    used = [(e.dataset, data.EVAL_SPLIT[e.dataset]) for e in case.evals if e.dataset in data.EVAL_SPLIT]
    source = CALIB_SOURCES.get(case.calibration.source) if case.calibration is not None else None
    if source is not None:  # None: no calibration, or a corpus streamed from the hub
        used.append(tuple(source))
    if case.recipe is not None:
        source = corpus.CORPORA.get(case.recipe.corpus)
        if source is not None:  # None: a directory or hub corpus, identified by `corpus_identity`
            used.append(source)
    return sorted(set(used))


def corpus_identity(case: Case, data_dir=None) -> dict:
    """``corpus:<name>`` -> digest of a post-training corpus that is not a data-directory file
    (a SlimPajama directory: its files' digest; online: the hub coordinates)."""
    from bench.training import corpus

    recipe = case.recipe
    if recipe is None or corpus.CORPORA.get(recipe.corpus) is not None:
        return {}
    ident = corpus.source_identity(recipe.slices, data_dir)
    value = ident.get("sha256") or f"hub:{ident.get('hub')}:{ident.get('documents')}"
    return {f"corpus:{recipe.corpus}": value}


def calibration_identity(case: Case) -> dict:
    """``calibration:slimpajama`` -> digest of the SlimPajama directory the case's calibration
    reads (its own, its recipe's, or ``$PRUNEBENCH_SLIMPAJAMA_DIR``), or the hub id."""
    if case.calibration is None or case.calibration.source != "slimpajama":
        return {}
    from bench.sources import calibration

    ident = calibration.identity(case.calibration)
    return {"calibration:slimpajama": ident.get("sha256") or f"hub:{ident.get('hub')}"}


def data_digests(datasets, data_dir=None) -> dict:
    """``dataset/split`` -> sha256 of the file read (or ``hub:<path>@<revision>`` online)."""
    from bench.sources import data

    out = {}
    root = data.resolve_data_dir(data_dir)
    for dataset, split in sorted(set(datasets)):
        src = data.get_source(dataset, split)
        if root is not None:
            out[f"{dataset}/{split}"] = src.sha256
        else:
            out[f"{dataset}/{split}"] = f"hub:{src.hub[0]}@{src.hub[3]}" if src.hub else None
    return out


def provenance(model_spec: str, datasets, env: RunEnv, dtype=None) -> dict:
    """The provenance of a result on `model_spec` that reads `datasets` ((dataset, split) pairs).

    Args:
        env: the run's directories and device (None device: CUDA when present).
        dtype: as the loader takes it; None means its default (float32 on CPU, bf16 on CUDA),
            so the result is known before anything is loaded.
    """
    from bench.sources.devices import default_dtype, parse_dtype, resolve_device

    dev = resolve_device(env.device)
    return {
        "code": code_identity(),
        "model": model_identity(model_spec, env),
        "data": data_digests(datasets, env.data_dir),
        "device": dev.type,
        "dtype": str(parse_dtype(dtype) or default_dtype(dev)).replace("torch.", ""),
        # The CPU kernels' vector ISA (`bench.isa`): a zoo built under another one is another zoo.
        "isa": isa_state(),
        "torch": _version("torch"),
        "transformers": _version("transformers"),
    }


def case_provenance(case: Case, env: RunEnv) -> dict:
    """The provenance a record of `case` made now, by this code on this machine, would carry."""
    prov = provenance(case.model, case_datasets(case), env)
    prov["data"].update(corpus_identity(case, env.data_dir))
    prov["data"].update(calibration_identity(case))
    return prov


def _short(value) -> str:
    if isinstance(value, dict):
        for key in ("zoo_key", "sha256", "weights_sha256", "revision"):
            if value.get(key):
                return str(value[key])[:12]
        return ",".join(f"{k}={_short(v)}" for k, v in sorted(value.items()) if v)[:40] or "none"
    return str(value)


def stale_reasons(stored: dict | None, current: dict) -> list[str]:
    """Why a stored provenance does not match the current one, e.g. ``code 1a2b3c -> 4d5e6f``."""
    if not stored:
        return ["no provenance (record made by an older prunebench)"]
    reasons = []
    for key in COMPARED:
        old, new = stored.get(key), current.get(key)
        if key == "code":
            if _code_key(old) != _code_key(new):
                reasons.append(f"code {code_label(old)} -> {code_label(new)}")
        elif old != new:
            if key == "data" and isinstance(old, dict) and isinstance(new, dict):
                changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
                reasons.append(f"data {', '.join(changed)} changed")
            else:
                reasons.append(f"{key} {_short(old)} -> {_short(new)}")
    return reasons


def _code_key(code: dict | None) -> tuple:
    code = code or {}
    return (code.get("prunebench"), code.get("commit"), code.get("dirty"), code.get("diff_sha256"))
