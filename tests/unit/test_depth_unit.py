"""Depth pruning with ``unit = "layers"``: the ratio is a fraction of the decoder layers.

The nano study uses it so that a depth ratio removes the same share of layers at every base
size, whatever each size's embedding share; the default (``params``) stays as it was.
"""

from __future__ import annotations

import pytest
from pruner_helpers import check_consistent, ids, tiny

from pruners.errors import PrunerError
from bench.registry import make_config
from pruners.registry import prune
from pruners.adapter import Adapter
from pruners.depth import DepthConfig, layers_for_ratio
from pruners.options import options


# Two 8-layer models whose embeddings are very different shares of their parameters: a
# 1000-token vocabulary over hidden 32 (most of the model) and 97 tokens over hidden 64.
def _emb_heavy():
    return tiny("llama-tied", vocab_size=1000, hidden_size=32, intermediate_size=64, num_hidden_layers=8,
                num_attention_heads=2, num_key_value_heads=2, head_dim=16)


def _emb_light():
    return tiny("llama-tied", num_hidden_layers=8)


@pytest.mark.parametrize("ratio,k", [(0.15, 1), (0.25, 2), (0.35, 3), (0.05, 0)])
def test_layers_unit_removes_the_same_layers_whatever_the_embedding_share(ratio, k):
    heavy, light = _emb_heavy(), _emb_light()
    assert layers_for_ratio(heavy, ratio, "layers") == layers_for_ratio(light, ratio, "layers") == k
    for model in (heavy, light):
        report = prune(model, ids(), make_config("depth", ratio=ratio, unit="layers"))
        assert report.removed["k"] == k and Adapter(model).num_layers == 8 - k
        assert report.config["unit"] == "layers"
        check_consistent(model)


def test_params_unit_is_the_default_and_differs_where_embeddings_differ():
    # As a fraction of parameters, 0.35 removes more layers of the embedding-heavy model (each
    # layer is a smaller share of it): exactly the confound the layers unit takes away.
    heavy, light = _emb_heavy(), _emb_light()
    assert DepthConfig(ratio=0.35).unit == "params"
    assert layers_for_ratio(heavy, 0.35) == layers_for_ratio(heavy, 0.35, "params")
    assert layers_for_ratio(heavy, 0.35) > layers_for_ratio(light, 0.35)


def test_layers_unit_on_a_tiny_model_reports_the_achieved_parameter_fraction():
    model = _emb_heavy()
    before = sum(p.numel() for p in model.parameters())
    report = prune(model, ids(), make_config("depth", ratio=0.25, unit="layers"))
    after = sum(p.numel() for p in model.parameters())
    assert report.params_before == before and report.params_after == after
    assert 0 < 1 - after / before < 0.25  # two layers of eight, but the embedding stays


def test_layers_unit_refuses_removing_every_layer():
    with pytest.raises(PrunerError, match="all of them"):
        prune(_emb_light(), ids(), make_config("depth", ratio=0.95, unit="layers"))


def test_unknown_unit_is_a_usage_error_with_a_suggestion():
    with pytest.raises(PrunerError, match="did you mean 'layers'"):
        make_config("depth", ratio=0.2, unit="layer")


def test_unit_is_an_option_with_help_a_flag_and_choices():
    opt = {o.name: o for o in options(DepthConfig)}["unit"]
    assert opt.flag == "depth-unit" and opt.choices == ("params", "layers") and opt.default == "params"
    assert "layers" in opt.help
