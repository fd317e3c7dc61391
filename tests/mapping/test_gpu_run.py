"""mapping.gpu_run: every tiny zoo model runs on the sw Triton kernels (interpreted on a CPU)
with every operator within its bound; corrupted kernels, kernels that never launch and shapes a
kernel cannot take are reported as failures."""

from __future__ import annotations

import pytest
import torch

import sw
import sw.linear_attention as linatt
import sw.svdquant as svdq
from mapping.gpu_cost import gpu_cost
from mapping.gpu_run import OpRun, run_on_gpu_kernels, run_op
from mapping.ir import (
    Attention,
    Elementwise,
    Linear,
    LinearAttention,
    Matmul,
    ModelGraph,
    Stage,
)
from mapping.zoo import MODELS, model

TINY = [name for name in MODELS if name.startswith("tiny-")]
VARIANTS = [("tiny-flux1-dev", {"quant": "nvfp4"}), ("tiny-llama3-8b-duo", {"phase": "prefill"})]


def _check_all(graph: ModelGraph) -> list[OpRun]:
    runs = run_on_gpu_kernels(graph)
    assert [r.op for r in runs] == [f"{s.name}.{o.name}" for s, o in graph.walk()]
    bad = [(r.op, r.reason) for r in runs if not r.passed]
    assert not bad
    for r in runs:
        op = graph.op(r.op)
        assert r.kind == op.kind and r.repeat == graph.stage(r.op.split(".")[0]).repeat
        assert r.kernel == gpu_cost(op).kernel                  # the labelling is gpu_cost's
        assert r.ran == ("torch" if r.kernel == "none" else "triton")
        assert (r.launches > 0) == (r.ran == "triton")          # kernels really launched
        assert r.worst_ratio <= 1 and r.max_abs_error >= 0 and r.rule
    return runs


def test_interpreter_without_gpu():
    assert sw.INTERPRETED or torch.cuda.is_available()


@pytest.mark.parametrize("name", TINY)
def test_tiny_models_all_pass(name):
    runs = _check_all(model(name))
    assert any(r.ran == "triton" for r in runs)


@pytest.mark.parametrize("name,overrides", VARIANTS, ids=[v[0] + "-" + "-".join(v[1].values())
                                                          for v in VARIANTS])
def test_variants_all_pass(name, overrides):
    _check_all(model(name, **overrides))


def test_kernels_per_model():
    """The kernels each tiny model exercises (a new op kind in the zoo shows up here)."""
    kernels = {n: {r.kernel for r in run_on_gpu_kernels(model(n))} - {"none"}
               for n in ("tiny-flux1-dev", "tiny-sana-0.6b", "tiny-llama3-8b-duo")}
    assert kernels == {
        "tiny-flux1-dev": {"sw.svdquant.quantize_act", "sw.svdquant.w4a4_gemm_lora"},
        "tiny-sana-0.6b": {"sw.linear_attention.linear_attention"},
        "tiny-llama3-8b-duo": {"sw.duo_attention.decode_step"}}


def _graph(*ops) -> ModelGraph:
    return ModelGraph("t", [Stage("s", list(ops))])


INT8 = _graph(Linear("lin", 5, 70, 33, "int8", "int8", "int8", bias=True),
              Matmul("mm", 3, 4, 40, 20, "int8", "int8", "int8"))
W4A4 = _graph(Elementwise("fc_quant", "quantize", 3 * 128, "bf16", "int4_g64"),
              Linear("fc", 3, 128, 48, "int4_g64", "int4_g64", rank=20, bias=True),
              Elementwise("fc2_quant", "quantize", 2 * 64, "bf16", "uint4_g64"),
              Linear("fc2", 2, 64, 16, "uint4_g64", "int4_g64", rank=32))


def test_int8_and_svdquant_edges():
    """int8 linear and batched matmul (bit-exact), a rank padded to 16, a post-GELU input."""
    runs = _check_all(INT8) + _check_all(W4A4)
    assert [r.launches for r in runs[:2]] == [1, 3]             # one launch per batch
    assert all(r.max_abs_error == 0 for r in runs[:2])


def test_torch_fallbacks_checked_against_golden():
    g = _graph(Attention("a48", 1, 2, 1, 48, 5, 9, causal=True, window=(1, 2)),
               Attention("cross", 1, 2, 2, 32, 16, 8), LinearAttention("la", 1, 2, 80, 10))
    runs = _check_all(g)
    assert {r.ran for r in runs} == {"torch"} and all("golden" in r.rule for r in runs)


def test_shape_the_kernel_cannot_take_is_a_failure():
    r = run_op(Elementwise("q", "quantize", 100, "bf16", "int4_g64"))
    assert r.ran == "triton" and not r.passed and r.launches == 0
    assert "100 elements are not rows of whole 64-groups" in r.reason


def test_corrupted_gemm_is_caught(monkeypatch):
    real = svdq.w4a4_gemm_lora
    monkeypatch.setattr(svdq, "w4a4_gemm_lora", lambda *a, **k: real(*a, **k) * (1 + 1e-4))
    runs = {r.op: r for r in run_on_gpu_kernels(W4A4)}
    assert runs["s.fc_quant"].passed and not runs["s.fc"].passed and not runs["s.fc2"].passed
    assert "past its bound" in runs["s.fc"].reason and runs["s.fc"].worst_ratio > 1


def test_corrupted_codes_are_caught(monkeypatch):
    real = svdq.quantize_act

    def flipped(*a, **k):
        codes, scales, la = real(*a, **k)
        return codes ^ 1, scales, la

    monkeypatch.setattr(svdq, "quantize_act", flipped)
    r = run_on_gpu_kernels(W4A4)[0]
    assert not r.passed and "codes:" in r.reason and "bit-exact expected" in r.reason


def test_kernel_that_never_launches_fails(monkeypatch):
    real = linatt.linear_attention
    monkeypatch.setattr(linatt, "linear_attention",
                        lambda *a, **k: real(*a, **{**k, "backend": "torch"}))
    r = run_op(LinearAttention("la", 1, 2, 32, 16))
    assert not r.passed and r.max_abs_error < 1e-6              # right numbers, wrong path
    assert "never launched" in r.reason and r.launches == 0


def test_seeds_deterministic():
    g = model("tiny-llama2-7b-duo")
    a, b = run_on_gpu_kernels(g, seed=3), run_on_gpu_kernels(g, seed=3)
    assert a == b
    c = run_on_gpu_kernels(g, seed=4)
    assert [r.max_abs_error for r in c] != [r.max_abs_error for r in a]


def test_bad_arguments():
    g = model("tiny-llama2-7b-duo")
    with pytest.raises(ValueError, match="seed must be an int >= 0, got -1"):
        run_on_gpu_kernels(g, seed=-1)
    with pytest.raises(ValueError, match="unknown device 'B200'"):
        run_on_gpu_kernels(g, device="B200")
    with pytest.raises(ValueError, match="graph must be a ModelGraph, got str"):
        run_on_gpu_kernels("tiny-llama2-7b-duo")


def test_to_dict():
    r = run_op(Elementwise("g", "gelu", 64))
    d = r.to_dict()
    assert d["op"] == "g" and d["ran"] == "torch" and d["passed"] is True
