"""Invariants of every pruning method on tiny random Llama and Qwen2 models.

One body of checks (`test_invariants`) is driven by a table of (architecture x method) cases;
hypothesis covers the properties (N:M pattern, achieved ratio, identity at ratio 0, seeds).
"""

from __future__ import annotations

import copy

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pruner_helpers import ARCHS, check_consistent, hooks_left, ids, logits, one_torch_thread, tiny  # noqa: F401

from pruners.errors import PrunerError
from bench.registry import make_config
from pruners.registry import prune
from pruners.report import count_params
from pruners.adapter import Adapter
from pruners.nm import check_pattern
from pruners.saving import load_pruned, save_pruned

HYP = settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# (case id, method, config fields)
METHODS = [
    ("depth", "depth", dict(ratio=0.3)),
    ("depth-block", "depth", dict(ratio=0.45, variant="block")),
    ("depth-iterative", "depth", dict(ratio=0.3, variant="iterative")),
    ("width", "width", dict(ratio=0.25)),
    ("width-sum", "width", dict(ratio=0.25, seq_agg="sum", batch_agg="sum", norm_agg="max")),
    ("blockwise-l2", "blockwise", dict(ratio=0.5)),
    ("blockwise-l1-range", "blockwise", dict(ratio=0.5, importance="l1", layers=(1, 3))),
    ("blockwise-random", "blockwise", dict(ratio=0.5, importance="random", seed=3)),
    ("blockwise-taylor", "blockwise", dict(ratio=0.5, importance="taylor", taylor="param_first")),
    ("blockwise-taylor-mix", "blockwise", dict(ratio=0.5, importance="taylor", taylor="param_mix",
                                               attn_layers=(0, 2), mlp_layers=(1, 4))),
    ("blockwise-query-head", "blockwise", dict(ratio=0.5, granularity="query-head", layers=(0, 3))),
    ("nm-magnitude", "nm", dict(nm_method="magnitude")),
    ("nm-wanda", "nm", dict(nm_method="wanda")),
    ("nm-sparsegpt", "nm", dict(nm_method="sparsegpt", ratio=0.5)),
    ("nm-wanda-4-8", "nm", dict(n=4, m=8, nm_method="wanda")),
]
CASES = [pytest.param(arch, method, fields, id=f"{arch}-{cid}")
         for arch in ARCHS for cid, method, fields in METHODS]


def _prune(arch, method, fields, seed=0):
    model = tiny(arch, seed=seed)
    report = prune(model, ids(), make_config(method, **fields))
    return model, report


@pytest.mark.parametrize("arch,method,fields", CASES)
def test_invariants(arch, method, fields, tmp_path):
    model, report = _prune(arch, method, fields)
    before = copy.deepcopy(report.params_before)
    assert before == count_params(tiny(arch))
    check_consistent(model)
    assert not hooks_left(model)
    assert all(p.grad is None and p.requires_grad for p in model.parameters())

    # The reported counts are exact.
    if method == "nm":
        zeros = sum(int((p == 0).sum()) for n, p in model.named_parameters() if "layers." in n and n.endswith("proj.weight"))
        assert report.params_after == before - zeros
        assert check_pattern(model, fields.get("n", 2), fields.get("m", 4)) == []
        assert all(abs(s - (1 - fields.get("n", 2) / fields.get("m", 4))) < 1e-12
                   for s in report.sparsity_per_layer.values())
    else:
        assert report.params_after == count_params(model)
    assert report.ratio == pytest.approx(1 - report.params_after / before, abs=0)
    assert report.ratio > 0
    d = report.to_dict()
    assert d["params_before"] == before and d["ratio"] == report.ratio
    assert d["wall_time_s"] > 0 and isinstance(d["peak_memory_bytes"], int)

    # What was removed is on the report.
    if method == "depth":
        k = report.removed["k"]
        assert len(report.removed["layers"]) == k and Adapter(model).num_layers == 4 - k
    if method == "blockwise":
        assert report.removed["attention"] or report.removed["mlp"]

    # save -> load gives identical logits; plain transformers loads uniform models.
    x = ids(2, 16, seed=5)
    ref = logits(model, x)
    out = save_pruned(model, tmp_path / "m", report=report)
    loaded = load_pruned(out)
    torch.testing.assert_close(logits(loaded, x), ref, rtol=0, atol=1e-6)
    if not getattr(model.config, "prunebench_layer_sizes", None):
        from transformers import AutoModelForCausalLM

        plain = AutoModelForCausalLM.from_pretrained(out).eval()
        torch.testing.assert_close(logits(plain, x), ref, rtol=0, atol=1e-6)


# --------------------------------------------------------------------------- hypothesis properties


@HYP
@given(arch=st.sampled_from(ARCHS), nm=st.sampled_from([(1, 2), (2, 4), (1, 4), (3, 4), (2, 8), (4, 8)]),
       method=st.sampled_from(["magnitude", "wanda", "sparsegpt"]))
def test_nm_groups_hold_exactly_n(arch, nm, method):
    n, m = nm
    model, report = _prune(arch, "nm", dict(n=n, m=m, nm_method=method))
    for name, mask in report.masks.items():
        groups = mask.reshape(mask.shape[0], -1, m)
        assert bool((groups.sum(-1) == n).all()), name
    for name, p in model.named_parameters():
        if name in report.masks:
            nonzero = (p != 0).reshape(p.shape[0], -1, m).sum(-1)
            assert bool((nonzero == n).all()), name  # random weights: no accidental zeros


@HYP
@given(arch=st.sampled_from(ARCHS), ratio=st.floats(0.0, 0.9),
       method=st.sampled_from(["depth", "width", "blockwise"]))
def test_achieved_ratio_is_reported(arch, ratio, method):
    model = tiny(arch)
    before = count_params(model)
    try:
        report = prune(model, ids(), make_config(method, ratio=ratio))
    except PrunerError as exc:  # only for ratios that would remove everything
        assert "every" in str(exc) or "all of them" in str(exc)
        return
    assert report.params_before == before
    assert report.params_after == count_params(model)
    assert report.ratio == 1 - count_params(model) / before
    check_consistent(model)


@HYP
@given(arch=st.sampled_from(ARCHS), case=st.sampled_from([
    ("depth", {}), ("depth", {"variant": "block"}), ("depth", {"variant": "iterative"}), ("width", {}),
    ("blockwise", {}), ("blockwise", {"importance": "taylor"}), ("blockwise", {"granularity": "query-head"})]))
def test_ratio_zero_is_identity(arch, case):
    method, extra = case
    model = tiny(arch)
    ref = logits(model)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    report = prune(model, ids(), make_config(method, ratio=0.0, **extra))
    assert report.params_after == report.params_before and report.ratio == 0
    torch.testing.assert_close(logits(model), ref, rtol=0, atol=0)
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


@HYP
@given(arch=st.sampled_from(ARCHS), case=st.sampled_from(METHODS), seed=st.integers(0, 3))
def test_same_seed_same_result(arch, case, seed):
    _, method, fields = case
    a, ra = _prune(arch, method, fields, seed=seed)
    b, rb = _prune(arch, method, fields, seed=seed)
    assert ra.removed == rb.removed and ra.params_after == rb.params_after
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@HYP
@given(arch=st.sampled_from(ARCHS), k_ratio=st.sampled_from([0.2, 0.3, 0.45, 0.6]),
       variant=st.sampled_from(["oneshot", "block", "iterative"]))
def test_depth_leaves_l_minus_k_layers(arch, k_ratio, variant):
    model = tiny(arch, num_hidden_layers=6)
    report = prune(model, ids(), make_config("depth", ratio=k_ratio, variant=variant))
    k = report.removed["k"]
    assert 0 < k < 6 and Adapter(model).num_layers == 6 - k
    if variant == "block":
        layers = report.removed["layers"]
        assert layers == list(range(layers[0], layers[0] + k))
    check_consistent(model)


# --------------------------------------------------------------------------- depth / width specifics


def test_depth_scores_from_layer_hooks_and_removes_most_similar():
    model = tiny("llama", num_hidden_layers=5)
    # Make layer 2 an identity: its output equals its input (cosine 1).
    with torch.no_grad():
        Adapter(model).qkvo(2)[3].weight.zero_()
        Adapter(model).gate_up_down(2)[2].weight.zero_()
    report = prune(model, ids(), make_config("depth", ratio=0.15))
    assert report.removed["layers"] == [2]
    assert report.importance["cosine"][2] == pytest.approx(1.0)
    assert max(report.importance["cosine"]) == report.importance["cosine"][2]


def test_qwen2_layer_types_shrink_with_depth():
    model = tiny("qwen2", num_hidden_layers=6)
    kinds = list(model.config.layer_types)
    assert "sliding_attention" in kinds and "full_attention" in kinds
    report = prune(model, ids(), make_config("depth", ratio=0.3))
    kept = [i for i in range(6) if i not in report.removed["layers"]]
    assert model.config.layer_types == [kinds[i] for i in kept]
    assert [Adapter(model).attn(i).sliding_window is not None for i in range(len(kept))] == \
        [kinds[i] == "sliding_attention" for i in kept]


def test_width_keeps_tied_embeddings_tied_and_llama_config_loadable():
    model = tiny("llama-tied")
    report = prune(model, ids(), make_config("width", ratio=0.3))
    ad = Adapter(model)
    assert ad.tied and model.config.hidden_size % model.config.num_attention_heads == 0
    assert len(report.removed["hidden_channels"]) == 64 - ad.hidden_size


# --------------------------------------------------------------------------- block-wise specifics


def test_gqa_blocked_and_faithful_scoring_differ():
    from pruners.blockwise import kv_group_scores

    hd, n_kv = 2, 2  # 4 query heads, 2 per group; blocked: g0={0,1}, g1={2,3}; faithful: g0={0,2}, g1={1,3}
    head = torch.tensor([0.1, 0.2, 9.0, 3.0])  # per query head
    q = head.repeat_interleave(hd)
    kv = torch.ones(n_kv * hd)
    zero_o = torch.zeros_like(q)
    blocked = kv_group_scores(q, kv, kv, zero_o, hd, n_kv, faithful=False)
    faithful = kv_group_scores(q, kv, kv, zero_o, hd, n_kv, faithful=True)
    assert blocked.tolist() == pytest.approx([2 * (0.1 + 0.2) + 4, 2 * (9 + 3) + 4])
    assert faithful.tolist() == pytest.approx([2 * (0.1 + 9) + 4, 2 * (0.2 + 3) + 4])
    assert int(blocked.argmin()) == 0 and int(faithful.argmin()) == 1


def _model_with_head_norms(arch, head_scale):
    model = tiny(arch)
    with torch.no_grad():
        for i in range(4):
            q, k, v, o = Adapter(model).qkvo(i)
            for h, s in enumerate(head_scale):
                q.weight[h * 16:(h + 1) * 16] *= s
                o.weight[:, h * 16:(h + 1) * 16] *= s
    return model


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_blockwise_faithful_switch_changes_removed_group(arch):
    scale = [0.01, 0.02, 50.0, 3.0]
    blocked = _model_with_head_norms(arch, scale)
    faithful = _model_with_head_norms(arch, scale)
    rb = prune(blocked, None, make_config("blockwise", ratio=0.5))
    rf = prune(faithful, None, make_config("blockwise", ratio=0.5, faithful=True))
    # Blocked: group 0 owns the tiny heads 0, 1 and goes. Faithful: group 0 is credited with head 2.
    assert rb.removed["attention"][0] == {"kv_heads": [0], "q_heads": [0, 1]}
    assert rf.removed["attention"][0] == {"kv_heads": [1], "q_heads": [2, 3]}


def test_blockwise_mha_blocked_equals_faithful():
    a, b = tiny("llama", num_key_value_heads=4), tiny("llama", num_key_value_heads=4)
    ra = prune(a, None, make_config("blockwise", ratio=0.5))
    rb = prune(b, None, make_config("blockwise", ratio=0.5, faithful=True))
    assert ra.removed == rb.removed


def test_blockwise_counts_follow_llm_pruner_rule():
    model = tiny("llama", intermediate_size=100)
    report = prune(model, None, make_config("blockwise", ratio=0.3, layers=(1, 3)))
    # MLP: 100 - int(100 * 0.7) = 30 channels; attention: 32 - int(32 * 0.7) = 10 < 16 -> no group.
    assert [Adapter(model).intermediate(i) for i in range(4)] == [100, 70, 70, 100]
    assert report.removed["attention"] == {}
    assert any("attention is left unpruned" in n for n in report.notes)


def test_small_ratio_rule_auto_skips_require_refuses():
    # n_kv = 2: a ratio below 1/2 removes less than one KV group.
    model = tiny("llama")
    ref_q = Adapter(model).attn(0).q_proj.weight.clone()
    report = prune(model, None, make_config("blockwise", ratio=0.25))
    assert report.removed["attention"] == {} and len(report.removed["mlp"]) == 4
    assert torch.equal(Adapter(model).attn(0).q_proj.weight, ref_q)
    assert [n for n in report.notes if "left unpruned" in n] == [
        "ratio 0.25 removes less than one KV group in layers 0-3 (one KV group needs ratio >= about "
        "1/n_kv_heads); their attention is left unpruned"]
    with pytest.raises(PrunerError, match="too small to prune attention"):
        prune(tiny("llama"), None, make_config("blockwise", ratio=0.25, attention="require"))
    off = prune(tiny("llama"), None, make_config("blockwise", ratio=0.5, attention="off"))
    assert off.removed["attention"] == {} and off.removed["attn_layers"] == [0, 0]


def test_query_head_granularity_keeps_groups_equal_and_kv_heads():
    model = tiny("qwen2", num_attention_heads=8, num_key_value_heads=2, head_dim=8)
    report = prune(model, None, make_config("blockwise", ratio=0.5, granularity="query-head"))
    ad = Adapter(model)
    for i in range(4):
        assert ad.n_kv_heads(i) == 2 and ad.n_heads(i) == 4 and ad.attn(i).num_key_value_groups == 2
        dropped = report.removed["attention"][i]["q_heads"]
        assert sorted(h // 4 for h in dropped) == [0, 0, 1, 1]  # two from each group
    check_consistent(model)


def test_taylor_grads_only_for_pruned_layers(monkeypatch):
    seen = []
    real = torch.autograd.grad

    def spy(outputs, inputs, *a, **kw):
        seen.append([p for p in inputs])
        return real(outputs, inputs, *a, **kw)

    monkeypatch.setattr(torch.autograd, "grad", spy)
    model = tiny("llama")
    ad = Adapter(model)
    allowed = {id(lin.weight) for i in (1, 2) for lin in (*ad.qkvo(i), *ad.gate_up_down(i))}
    prune(model, ids(), make_config("blockwise", ratio=0.5, importance="taylor", taylor="param_second",
                                    layers=(1, 3)))
    assert seen and all({id(p) for p in call} == allowed for call in seen)
    assert all(p.grad is None and p.requires_grad for p in model.parameters())


def test_taylor_without_calibration_is_a_usage_error():
    with pytest.raises(PrunerError, match="calibration"):
        prune(tiny("llama"), None, make_config("blockwise", ratio=0.5, importance="taylor"))


def test_variable_width_roundtrip_plain_transformers_and_remote_code(tmp_path, monkeypatch):
    from transformers import AutoModelForCausalLM

    model = tiny("qwen2")
    prune(model, None, make_config("blockwise", ratio=0.5, layers=(1, 3)))
    sizes = model.config.prunebench_layer_sizes
    assert sizes[0] != sizes[1]
    x = ids(2, 16)
    ref = logits(model, x)
    out = save_pruned(model, tmp_path / "var")
    with pytest.raises(Exception, match="(?i)mismatch"):
        AutoModelForCausalLM.from_pretrained(out)
    torch.testing.assert_close(logits(load_pruned(out), x), ref, rtol=0, atol=1e-6)
    import transformers.dynamic_module_utils as dmu

    monkeypatch.setattr(dmu, "HF_MODULES_CACHE", str(tmp_path / "modules"))
    remote = AutoModelForCausalLM.from_pretrained(out, trust_remote_code=True).eval()
    torch.testing.assert_close(logits(remote, x), ref, rtol=0, atol=1e-6)


def test_llama_uniform_heads_not_dividing_hidden_use_layer_sizes(tmp_path):
    # 6 heads over 3 KV groups, hidden 54: removing one group leaves 4 heads, and Llama configs
    # refuse hidden_size % num_attention_heads != 0, so the widths go to prunebench_layer_sizes.
    model = tiny("llama", hidden_size=54, num_attention_heads=6, num_key_value_heads=3, head_dim=8)
    prune(model, None, make_config("blockwise", ratio=0.34))
    assert Adapter(model).n_heads(0) == 4 and model.config.num_attention_heads == 6
    assert model.config.prunebench_layer_sizes[0]["num_attention_heads"] == 4
    x = ids(2, 8)
    ref = logits(model, x)
    torch.testing.assert_close(logits(load_pruned(save_pruned(model, tmp_path / "m")), x), ref, rtol=0, atol=1e-6)


# --------------------------------------------------------------------------- N:M specifics


def test_nm_masks_survive_training_steps():
    from pruners.masks import apply_masks, keep_masks
    from pruners.nm import masks_from_model

    model, report = _prune("llama", "nm", dict(nm_method="wanda"))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    handle = keep_masks(opt, model, report.masks)
    for _ in range(2):
        loss = model(input_ids=ids(), labels=ids()).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    handle.remove()
    assert check_pattern(model, 2, 4) == []
    recovered = masks_from_model(model)
    assert all(torch.equal(recovered[k], report.masks[k]) for k in report.masks)
    apply_masks(model, report.masks)


def test_nm_load_verifies_pattern(tmp_path):
    model, _ = _prune("llama", "nm", dict(nm_method="magnitude"))
    out = save_pruned(model, tmp_path / "nm")
    assert check_pattern(load_pruned(out), 2, 4) == []
    from safetensors.torch import load_file, save_file

    f = out / "model.safetensors"
    state = load_file(f)
    key = "model.layers.0.mlp.up_proj.weight"
    state[key] = torch.ones_like(state[key])
    save_file(state, f, metadata={"format": "pt"})
    with pytest.raises(PrunerError, match="break the saved 2:4 pattern"):
        load_pruned(out)


def test_sparsegpt_beats_magnitude_on_layer_reconstruction():
    from pruners.nm import nm_mask, sparsegpt_prune

    g = torch.Generator().manual_seed(0)
    X = torch.randn(512, 64, generator=g) * torch.linspace(0.1, 3, 64)  # (tokens, features)
    W = torch.randn(32, 64, generator=g)
    H = 2 * X.T @ X / X.shape[0]
    w_sgpt, keep = sparsegpt_prune(W, H, 2, 4, blocksize=16)
    assert bool((keep.reshape(32, -1, 4).sum(-1) == 2).all()) and torch.equal(w_sgpt == 0, ~keep)
    w_mag = W * nm_mask(W.abs(), 2, 4)
    w_wanda = W * nm_mask(W.abs() * X.norm(dim=0), 2, 4)
    err = {name: ((X @ (w - W).T) ** 2).mean().item() for name, w in
           (("sparsegpt", w_sgpt), ("wanda", w_wanda), ("magnitude", w_mag))}
    assert err["sparsegpt"] < err["wanda"] < err["magnitude"]


# --------------------------------------------------------------------------- registry, configs, adapter


def test_unknown_method_lists_known_with_hint():
    with pytest.raises(PrunerError, match=r"unknown pruning method 'widht' \(did you mean 'width'\?\).*blockwise"):
        make_config("widht", ratio=0.2)


@pytest.mark.parametrize("method,fields,match", [
    ("depth", dict(ratio=1.0), r"\[0, 1\)"),
    ("width", dict(ratio=-0.1), r"\[0, 1\)"),
    ("blockwise", dict(ratio=0.2, importance="taylr"), "did you mean 'taylor'"),
    ("blockwise", dict(ratio=0.2, taylor="param_frist"), "did you mean 'param_first'"),
    ("blockwise", dict(ratio=0.2, layers="4-30"), "START:END"),
    ("blockwise", dict(ratio=0.2, granularity="query-head", faithful=True), "kv-group"),
    ("nm", dict(n=2, m=4, ratio=0.25), "sparsity is 0.5"),
    ("nm", dict(n=4, m=4), "N < M"),
    ("nm", dict(nm_method="wand"), "did you mean 'wanda'"),
    ("depth", dict(ratio=0.2, varaint="block"), "did you mean 'variant'"),
])
def test_config_validation(method, fields, match):
    with pytest.raises(PrunerError, match=match):
        make_config(method, **fields)


@pytest.mark.parametrize("method,fields,match", [
    ("blockwise", dict(ratio=0.5, layers=(2, 9)), "outside the model"),
    ("blockwise", dict(ratio=0.5, mlp_layers=(0, 5)), "outside the model"),
    ("depth", dict(ratio=0.95), "all of them"),
    ("width", dict(ratio=0.99), "every hidden channel"),
    ("blockwise", dict(ratio=0.99), "every"),
])
def test_impossible_requests_leave_model_untouched(method, fields, match):
    model = tiny("llama")
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(PrunerError, match=match):
        prune(model, ids(), make_config(method, **fields))
    assert model.state_dict().keys() == state.keys()
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


def test_unsupported_architecture():
    from transformers import GPT2Config, GPT2LMHeadModel

    model = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=50))
    with pytest.raises(PrunerError, match="unsupported architecture 'gpt2'.*llama, qwen2"):
        prune(model, None, make_config("depth", ratio=0.2))


def test_meta_dry_run_counts_match_real_model():
    from transformers import AutoModelForCausalLM

    from pruner_helpers import tiny_config

    for method, fields in [("blockwise", dict(ratio=0.5, layers=(1, 3))), ("width", dict(ratio=0.3)),
                           ("depth", dict(ratio=0.3)), ("nm", {})]:
        with torch.device("meta"):
            meta = AutoModelForCausalLM.from_config(tiny_config("llama"))
        rm = prune(meta, None, make_config(method, **fields))
        rr = prune(tiny("llama"), ids(), make_config(method, **fields))
        assert (rm.params_before, rm.params_after) == (rr.params_before, rr.params_after), method
        assert rm.dry_run and not rr.dry_run


def test_semi_structured_timing_skips_without_cuda():
    from pruners.nm import semi_structured_speedup

    model, report = _prune("llama", "nm", dict(nm_method="magnitude"))
    assert report.speed == {}  # only measured on CUDA
    assert "skipped" in semi_structured_speedup(model)


BUILTIN = ("blockwise", "depth", "nm", "width")
WRONG = {bool: 1, int: "4", float: "0.1", str: 3}  # a value of the wrong type for each option kind


@pytest.mark.parametrize("method", BUILTIN)
def test_config_declares_options_calibration_and_masks(method):
    """Every built-in config declares its options (with help), calibration needs and shape."""
    from bench.registry import get_method
    from pruners.registry import needs_calibration

    m = get_method(method)
    assert m.module == f"pruners.{method}"
    assert all(o.help for o in m.options) and "ratio" in {o.name for o in m.options}
    ratio = 0.5 if method == "nm" else 0.25
    for opt in m.options:
        if opt.choices:  # every declared choice builds a config (so help never lists a dead value)
            for choice in opt.choices:
                make_config(method, ratio=ratio, **{opt.name: choice})
        if opt.kind is not None and opt.name != "ratio":
            with pytest.raises(PrunerError, match=f"option '{opt.name}' must be"):
                make_config(method, ratio=ratio, **{opt.name: WRONG[opt.kind]})
    samples, seq_len = m.calibration_shape
    assert samples >= 1 and seq_len >= 2
    expected = {"blockwise": False, "depth": True, "nm": False, "width": True}[method]  # default options
    assert needs_calibration(make_config(method, ratio=ratio)) is expected


def test_only_masking_methods_leave_masks_to_keep():
    for method, fields in [("depth", dict(ratio=0.3)), ("width", dict(ratio=0.3)),
                           ("blockwise", dict(ratio=0.5, layers=(1, 3))), ("nm", {})]:
        report = prune(tiny("llama"), ids(), make_config(method, **fields))
        assert report.keeps_masks is (method == "nm") and bool(report.masks) is (method == "nm"), method
        assert report.to_dict()["keeps_masks"] is (method == "nm")
    report = prune(tiny("llama"), None, make_config("nm", keep_masks=False))
    assert report.masks is None and not report.keeps_masks
