"""Hugging Face hub ids, resolved offline first: a models directory, the HF cache, then the hub.

A hub spec is ``org/name``, optionally pinned to a revision: ``org/name@<commit sha, branch or
tag>`` (a study's model ``revision`` key makes the same spec). It resolves, first that applies:

1. a local models directory: ``$PRUNEBENCH_MODELS_DIR/<org>/<name>/`` (or ``--models-dir``),
   a ``save_pretrained`` directory. Its revision is the one it declares in a one-line
   ``revision`` file (e.g. the commit of the snapshot it was copied from), else
   ``sha256:<digest>`` of its config and weight files (`directory_digest`);
2. the Hugging Face cache (``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else
   ``~/.cache/huggingface/hub``), in huggingface_hub's layout: ``models--<org>--<name>/`` with
   ``refs/<branch>`` holding a commit sha and ``snapshots/<sha>/`` the files. The revision is
   the snapshot's commit sha;
3. the hub, when online: transformers downloads the pinned revision (default ``main``).

A pin must match what is found: a local copy at another revision is skipped, and offline with
no copy at the pin is one line naming both revisions. Offline (``HF_HUB_OFFLINE=1``, or the hub
unreachable) with no copy at all is one line naming where it looked and how to provide one.

The models directory is the run's (`bench.env.RunEnv.models_dir`), passed to `find_local` and
`resolve`; a call made outside a run reads ``$PRUNEBENCH_MODELS_DIR`` then. The HF cache
variables are read at each call (not at import, as huggingface_hub's constants are).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from bench.errors import UsageError
from bench.env import MODELS_DIR_ENV, default_models_dir

REVISION_FILE = "revision"  # one line in a models-directory entry: the revision it holds
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_SHA = re.compile(r"^[0-9a-f]{40}$")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".gguf")


@dataclass(frozen=True)
class HubSpec:
    """``org/name`` and the revision a study pinned (None: whatever is found, main online)."""

    hub_id: str
    pin: str | None = None

    @property
    def org(self) -> str:
        return self.hub_id.split("/")[0]

    @property
    def name(self) -> str:
        return self.hub_id.split("/")[1]


def parse(spec: str) -> HubSpec | None:
    """``org/name[@revision]`` -> its parts; None for anything else (paths, aliases, files)."""
    spec = str(spec)
    if spec.startswith((".", "/", "~")):
        return None
    hub_id, _, pin = spec.partition("@")
    parts = hub_id.split("/")
    if len(parts) != 2 or not all(_NAME.match(p) for p in parts):
        return None
    if "@" in spec and not pin:
        return None
    return HubSpec(hub_id, pin or None)


def pinned(spec: str, revision: str | None) -> str:
    """The spec that pins `revision` (a study's ``revision`` key): ``org/name@revision``."""
    return spec if revision is None else f"{spec}@{revision}"


@dataclass(frozen=True)
class Resolved:
    """Where a hub spec resolved: ``models-dir`` or ``hf-cache`` (a local directory) or ``hub``."""

    hub_id: str
    pin: str | None
    source: str
    path: Path | None  # the directory to load, None for the hub
    revision: str | None  # commit sha, declared revision or directory digest; None: not known yet

    def identity(self) -> dict:
        """What a record's provenance says about the weights (no machine paths)."""
        return {"hub_id": self.hub_id, "source": self.source, "revision": self.revision, "pinned": self.pin}


# --------------------------------------------------------------------------- where to look


def models_dir(given=None) -> Path | None:
    """The models directory: `given` (the run's, `bench.env.RunEnv.models_dir`), else
    ``$PRUNEBENCH_MODELS_DIR`` for a call made outside a run; None: there is none."""
    return default_models_dir(given)


def hf_cache_dir() -> Path:
    """The HF hub cache as huggingface_hub would pick it, from the environment now."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HUGGINGFACE_HUB_CACHE"):
        return Path(os.environ["HUGGINGFACE_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface")
    return Path(home).expanduser() / "hub"


def offline_by_setting() -> bool:
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _declared_revision(path: Path) -> tuple[str, str]:
    """(revision, how it was found) of a models-directory entry."""
    declared = path / REVISION_FILE
    if declared.is_file():
        text = declared.read_text().strip()
        if text:
            return text.splitlines()[0].strip(), f"its {REVISION_FILE} file"
    return f"sha256:{directory_digest(path)}", "the digest of its files"


def directory_digest(path: Path) -> str:
    """Digest of a save_pretrained directory: its config and every weight file, by content."""
    import hashlib

    from bench.sources.data import file_sha256  # memoised: a session hashes a weight file once

    h = hashlib.sha256()
    for f in sorted(Path(path).iterdir()):
        if f.is_file() and (f.name == "config.json" or f.suffix in WEIGHT_SUFFIXES):
            h.update(f"{f.name}:{file_sha256(f)}\n".encode())
    return h.hexdigest()


def _in_models_dir(spec: HubSpec, found: list[str], revision: bool = True, root: Path | None = None) -> Resolved | None:
    if root is None:
        return None
    path = root / spec.org / spec.name
    if not (path / "config.json").is_file():
        return None
    if not revision and spec.pin is None:  # hashing an 8B model's weights only to read its config: no
        return Resolved(spec.hub_id, spec.pin, "models-dir", path, None)
    revision, how = _declared_revision(path)
    if spec.pin is not None and spec.pin != revision:
        found.append(f"{revision} in {path} ({how})")
        return None
    return Resolved(spec.hub_id, spec.pin, "models-dir", path, revision)


def cache_repo(hub_id: str) -> Path:
    """``<HF cache>/models--<org>--<name>``: huggingface_hub's directory for a model repo."""
    return hf_cache_dir() / f"models--{hub_id.replace('/', '--')}"


def _read_ref(repo: Path, ref: str) -> str | None:
    path = repo / "refs" / ref
    if not path.is_file():
        return None
    return path.read_text().strip() or None


def _in_hf_cache(spec: HubSpec, found: list[str]) -> Resolved | None:
    repo = cache_repo(spec.hub_id)
    if not repo.is_dir():
        return None

    def snapshot(sha: str | None) -> Path | None:
        path = repo / "snapshots" / sha if sha else None
        return path if path is not None and (path / "config.json").is_file() else None

    if spec.pin is not None:
        # A pin is a commit sha (its snapshot) or a ref name: a branch, tag or refs/pr/N commit.
        sha = spec.pin if _SHA.match(spec.pin) and snapshot(spec.pin) else _read_ref(repo, spec.pin)
        if sha is not None and snapshot(sha):
            return Resolved(spec.hub_id, spec.pin, "hf-cache", snapshot(sha), sha)
    have = sorted(p.name for p in (repo / "snapshots").glob("*") if snapshot(p.name))
    if spec.pin is None:
        sha = _read_ref(repo, "main")
        if snapshot(sha):
            return Resolved(spec.hub_id, spec.pin, "hf-cache", snapshot(sha), sha)
        if len(have) == 1:  # no usable main ref: a lone snapshot is unambiguous
            return Resolved(spec.hub_id, spec.pin, "hf-cache", snapshot(have[0]), have[0])
        if have:
            raise UsageError(f"model {spec.hub_id}: the HF cache {repo} holds snapshots {', '.join(have)} and no "
                             f"refs/main naming one of them; pin one (revision = \"<sha>\" in the study, or "
                             f"{spec.hub_id}@<sha>)")
        return None
    if have:
        found.append(f"{', '.join(have)} in the HF cache {repo}")
    return None


def find_local(spec: str | HubSpec, revision: bool = True, models: Path | None = None) -> Resolved | None:
    """The local copy `spec` resolves to (models directory, then HF cache), or None.

    Args:
        models: the models directory (see `models_dir`).
        revision: False: an unpinned models-directory entry's revision is left None instead of
            digesting its weights (for callers that only read the config).
    Raises:
        UsageError: a pinned revision with local copies at other revisions only, while
            offline (online, the hub provides the pin).
    """
    spec = parse(spec) if isinstance(spec, str) else spec
    found: list[str] = []
    hit = _in_models_dir(spec, found, revision, models_dir(models)) or _in_hf_cache(spec, found)
    if hit is None and found and offline_by_setting():
        raise _pin_error(spec, found)
    return hit


def _pin_error(spec: HubSpec, found: list[str]) -> UsageError:
    return UsageError(f"model {spec.hub_id}: the study pins revision {spec.pin}, but the local copies hold "
                      f"revision {'; '.join(found)}; put revision {spec.pin} there, change the pin to one found, "
                      f"or go online (unset HF_HUB_OFFLINE) to download it")


def resolve(spec: str, models: Path | None = None) -> Resolved:
    """Where `spec` (a hub spec) comes from: a local copy, else the hub when online.

    Args:
        models: the models directory (see `models_dir`).

    Raises:
        UsageError: offline with no copy (naming where it looked and the ways to provide one),
            or offline with copies at other revisions than the pin only.
    """
    hs = parse(spec)
    if hs is None:
        raise UsageError(f"{spec!r} is not a hub id; give one as org/name or org/name@revision")
    found: list[str] = []
    root = models_dir(models)
    hit = _in_models_dir(hs, found, root=root) or _in_hf_cache(hs, found)
    if hit is not None:
        return hit
    from bench.sources.data import hub_reachable

    if offline_by_setting() or not hub_reachable():
        if found:
            raise _pin_error(hs, found)
        where = (f"no save_pretrained directory at {root / hs.org / hs.name}" if root is not None
                 else f"${MODELS_DIR_ENV} is not set")
        why = "HF_HUB_OFFLINE is set" if offline_by_setting() else "the hub is not reachable"
        raise UsageError(f"model {hs.hub_id} is not available offline ({why}): {where}, and it is not in the HF "
                         f"cache ({cache_repo(hs.hub_id)}); save it as a save_pretrained directory "
                         f"${MODELS_DIR_ENV}/{hs.hub_id} (or --models-dir DIR), put it in the HF cache, or go "
                         f"online to download it")
    return Resolved(hs.hub_id, hs.pin, "hub", None, hs.pin if hs.pin and _SHA.match(hs.pin) else None)


def hub_revision(resolved: Resolved) -> str | None:
    """The commit a hub resolution stands for: known locally, else asked of the hub (online)."""
    if resolved.revision is not None or resolved.source != "hub":
        return resolved.revision
    try:
        from huggingface_hub import HfApi

        return HfApi().model_info(resolved.hub_id, revision=resolved.pin).sha
    except Exception as exc:  # noqa: BLE001 - any hub failure: the load that follows reports it
        raise UsageError(f"model {resolved.hub_id}: the hub did not give its revision "
                         f"{resolved.pin or 'main'} ({type(exc).__name__}: {str(exc).splitlines()[0][:120]}); "
                         f"check the id and pin, or provide a local copy ($PRUNEBENCH_MODELS_DIR)") from None
