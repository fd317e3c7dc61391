"""``flows.e2e_softmax``: softmax attention leaves (FLUX.1's joint attention, Sana's
cross-attention, VILA-U's decode) on the long-context attention kernel: bit-exact against
golden's fixed-point head, cycle model = RTL = the mapper's fused cost, within golden's bound;
a wrong output is caught; without the units the leaf stays in torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import flows.e2e as e2e
import flows.e2e_softmax as e2e_softmax
from hw.front.arch import load_arch
from mapping.accel_cost import cost_op
from mapping.ir import Attention
from mapping.torch_attention import SoftmaxAttention

FUSED = load_arch("examples/arch/lego_fused.yaml")
GEMMINI = load_arch("examples/arch/gemmini_like.yaml")


def _qkv(hq: int, hk: int, nq: int, nk: int, d: int = 16, seed: int = 3):
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(s, generator=g) for s in ((1, hq, nq, d), (1, hk, nk, d),
                                                       (1, hk, nk, d)))


@pytest.mark.parametrize("nq, nk", [(1, 5), (6, 9)])
def test_heads_on_the_rtl(nq, nk):
    """A decode (1 query) and a non-causal block (6 over 9 keys), 2 KV heads of 2 queries."""
    q, k, v = _qkv(4, 2, nq, nk)
    accel, gold = e2e._Gemms(FUSED, "fast"), e2e._Gemms(FUSED, None)
    got = e2e_softmax.softmax_attention(torch, q, k, v, accel, "attn#1")
    want = e2e_softmax.softmax_attention(torch, q, k, v, gold, "attn#1")
    assert torch.equal(got, want) and not gold.records
    assert [r.name for r in accel.records] == ["attn#1[0,0]", "attn#1[0,1]"]
    fused = cost_op(FUSED, Attention("a", 1, 4, 2, 16, nq, nk, nq == 1, None, "int8", "int8"))
    assert sum(r.mapper_cycles for r in accel.records) == fused.cycles
    for r in accel.records:
        assert r.bit_exact and r.rtl_cycles == r.model_cycles == r.mapper_cycles
        assert r.shape == (2 * nq, nk, 16) and 0 < r.err <= r.err_bound
    ref = SoftmaxAttention()(q, k, v)
    assert float((got - ref).abs().max()) < 0.05 * float(ref.abs().max())


def test_flux_attention_and_modulation_on_the_accelerator():
    """Every FLUX attention head and W4A16 modulation linear runs on the accelerator; nothing
    is left uncosted on the host (the modulation's group rescale is a host record)."""
    run = e2e.run_e2e("tiny-flux1-dev", FUSED, engine="ref", gpu=False)
    assert run.passed, run.report()
    heads = [op for op in run.ops if ".attn#" in op.name]
    assert len(heads) == 4 * 2                             # 4 blocks x 2 heads, batch 1
    assert all(op.bit_exact and op.model_cycles == op.mapper_cycles
               and op.err <= op.err_bound for op in heads)
    per_call = cost_op(FUSED, Attention("a", 1, 2, 2, 32, 24, 24, False, None, "int8",
                                        "int8")).cycles
    for block in ("double_blocks.0", "single_blocks.1"):
        assert sum(op.mapper_cycles for op in heads
                   if op.name.startswith(f"{block}.attn#1")) == per_call
    from mapping.torch_blocks import W4A16Linear
    from mapping.torch_models import tiny_flux1_dev

    w4a16 = {f"{p}#1" for p, m in tiny_flux1_dev()[0].named_modules()
             if isinstance(m, W4A16Linear)}
    mods = [op for op in run.ops if op.name in w4a16]
    assert len(w4a16) == len(mods) == 6 and all(op.bit_exact for op in mods)
    rescale = [h for h in run.host_ops if h.what == "group_rescale"]
    assert len(rescale) == 6 and all(h.costed for h in rescale)
    report = run.report()
    assert report["host_uncosted"] == {} and "W4A16Linear" not in report["torch_ops"]


def test_a_wrong_attention_output_is_caught(monkeypatch):
    real = e2e_softmax.run_long_prefill

    def off_by_one(*args, **kwargs):
        run = real(*args, **kwargs)
        run.output[0, 0, 0] += 1
        return run

    monkeypatch.setattr(e2e_softmax, "run_long_prefill", off_by_one)
    q, k, v = _qkv(2, 2, 4, 6)
    accel = e2e._Gemms(FUSED, "ref")
    e2e_softmax.softmax_attention(torch, q, k, v, accel, "attn#1")
    assert [r.bit_exact for r in accel.records] == [False, False]


def test_stays_in_torch_without_the_units_and_rejects_bad_shapes():
    assert e2e_softmax.softmax_on_accelerator(SoftmaxAttention(), FUSED)
    assert not e2e_softmax.softmax_on_accelerator(SoftmaxAttention(), GEMMINI)
    assert not e2e_softmax.softmax_on_accelerator(torch.nn.Linear(2, 2), FUSED)
    q, k, v = _qkv(3, 2, 2, 5)
    with pytest.raises(ValueError, match=r"softmax attention takes q .* got \(1, 3, 2, 16\)"):
        e2e_softmax.softmax_attention(torch, q, k, v, e2e._Gemms(FUSED, None), "attn#1")
    assert np.isfinite(SoftmaxAttention()(*_qkv(4, 2, 2, 5)).numpy()).all()
