"""``flows.e2e_gpu``: the e2e run's GPU target, the tiny models' chains with their leaves on
the sw Triton kernels (the interpreter here): linears bit-exact against golden's product (so
equal to the accelerator's), SVDQuant, linear attention and DuoAttention within their bounds,
every call's kernels launched."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

import flows.e2e as e2e
import flows.e2e_gpu as e2e_gpu
import sw.int8_gemm
from flows.e2e_tables import gpu_records_table
from golden.int_gemm import int_gemm
from golden.svdquant_fixed import quantize_symmetric
from hw.front.arch import load_arch
from mapping.torch_attention import DuoAttention
from mapping.torch_blocks import SVDQuantLinear

FUSED = load_arch("examples/arch/lego_fused.yaml")
GEMMINI = load_arch("examples/arch/gemmini_like.yaml")


@functools.cache
def _run(name: str, arch: str = "lego_fused") -> e2e.E2ERun:
    return e2e.run_e2e(name, FUSED if arch == "lego_fused" else GEMMINI, engine="ref")


@pytest.mark.parametrize("name, kinds, torch_only", [
    ("tiny-llama3-8b-duo", {"sw.int8_gemm.int8_gemm", "sw.duo_attention.decode_step"}, []),
    ("tiny-sana-0.6b", {"sw.int8_gemm.int8_gemm", "sw.linear_attention.linear_attention"},
     ["SoftmaxAttention"])])
def test_gpu_chain(name, kinds, torch_only):
    """``torch_only``: leaves the accelerator runs and the GPU run leaves in torch (sw has no
    kernel for unmasked softmax attention)."""
    run = _run(name)
    assert run.passed and run.gpu_within_bounds, run.report()
    assert {op.kernel for op in run.gpu_ops} == kinds
    assert all(op.launches > 0 and op.err <= op.err_bound for op in run.gpu_ops)
    linears = [op for op in run.gpu_ops if op.kernel == "sw.int8_gemm.int8_gemm"]
    assert linears and all(op.bit_exact for op in linears)      # = golden's int_gemm
    assert all(op.bit_exact is None for op in run.gpu_ops if op not in linears)
    assert {op.name for op in linears} == {op.name for op in run.ops if "[" not in op.name}
    assert 0 < run.rel_err_gpu < 0.1 and run.max_err_gpu > 0
    # the attention leaves differ (fixed point on the accelerator, float on the GPU)
    assert 0 < run.gpu_vs_accel < 0.1
    report = run.report()
    assert report["gpu_ops"] == len(run.gpu_ops) and report["gpu_within_bounds"]
    assert (report["max_err_gpu"], report["rel_err_gpu"], report["gpu_vs_accel"]) == (
        run.max_err_gpu, run.rel_err_gpu, run.gpu_vs_accel)
    assert report["gpu_torch_ops"] == sorted(report["torch_ops"] + torch_only)
    assert run.gpu_seconds > 0
    table = gpu_records_table(run).splitlines()
    assert table[0].startswith("gpu call") and len(table) == len(run.gpu_ops) + 1


def test_gpu_linear_equals_the_accelerator_bit_for_bit():
    lin = torch.nn.Linear(96, 40)
    x = torch.randn(3, 5, 96) * 3
    gpu = e2e_gpu.GpuRunner()
    got = e2e_gpu.gpu_linear(lin, x, gpu, "fc#1")
    accel = e2e._Gemms(FUSED, "ref")
    want = e2e._w8a8(torch, lin, x, accel, "fc#1")
    assert got.shape == (3, 5, 40) and torch.equal(got, want)
    (rec,), (acc,) = gpu.records, accel.records
    assert rec.bit_exact and rec.launches > 0 and rec.shape == acc.shape == (15, 96, 40)
    assert (rec.err, rec.err_bound) == (acc.err, acc.err_bound)
    a = quantize_symmetric(x.reshape(15, 96).numpy(), 8)[0]
    w = quantize_symmetric(lin.weight.detach().numpy(), 8)[0]
    c = sw.int8_gemm.int8_gemm(a, np.ascontiguousarray(w.T))
    np.testing.assert_array_equal(c, int_gemm(a, w.T))


@pytest.mark.parametrize("act, rank, lora", [("int4_g64", 32, 0), ("uint4_g64", 8, 0),
                                             ("int4_g64", 32, 16), ("uint4_g64", 8, 5)])
def test_svdquant_leaf(act, rank, lora):
    """The W4A4 kernel with its fused branch (padded to a multiple of 16; a LoRA joined)
    within the stated bound of the leaf's float linear, its codes golden's; the leaf's own
    float32 forward is within the same bound plus its float32 rounding."""
    gen = torch.Generator().manual_seed(rank + lora)
    mod = SVDQuantLinear(128, 48, rank, act=act, dtype=torch.float32)
    with torch.no_grad():
        mod.bias.copy_(torch.randn(48, generator=gen))
    if lora:
        mod.attach_lora(torch.randn(lora, 128, generator=gen) / 11,
                        torch.randn(48, lora, generator=gen) / 7, 0.5)
    x = torch.randn(2, 7, 128, generator=gen) * 2
    if act == "uint4_g64":
        x = torch.nn.functional.gelu(x, approximate="tanh")
    gpu = e2e_gpu.GpuRunner()
    y = e2e_gpu.gpu_svdquant(mod, x, gpu, "fc#1")
    (rec,) = gpu.records
    assert rec.passed and rec.bit_exact and rec.launches == 2 and rec.shape == (14, 128, 48)
    assert 0 < rec.err <= rec.err_bound < 1e-2
    with torch.no_grad():
        assert float((y - mod(x)).abs().max()) < 1e-4


def test_svdquant_rejects_inputs_below_the_shift():
    mod = SVDQuantLinear(64, 16, 8, act="uint4_g64", dtype=torch.float32)
    with pytest.raises(ValueError, match="input -0.5 below -GELU_SHIFT"):
        e2e_gpu.gpu_svdquant(mod, torch.full((2, 64), -0.5), e2e_gpu.GpuRunner(), "fc")


@pytest.mark.parametrize("tokens, retrieval", [(1, 1), (16, 1), (16, 2), (5, 0)])
def test_duo_attention_leaf(tokens, retrieval):
    """Decode and prefill chunks: the cache prefilled with the leaf's past (streaming heads:
    their kept positions), then the call's queries; within 1e-5 of golden and of the leaf's
    own forward (which checks the reconstructed past)."""
    gen = torch.Generator().manual_seed(tokens)
    mod = DuoAttention(4, 2, 16, retrieval, 64, tokens, 4, 8, dtype=torch.float32)
    q = torch.randn(1, 4, tokens, 16, generator=gen)
    k, v = (torch.randn(1, 2, tokens, 16, generator=gen) for _ in "kv")
    gpu = e2e_gpu.GpuRunner()
    out = e2e_gpu.gpu_duo_attention(mod, q, k, v, 64 - tokens, gpu, "attn#1")
    (rec,) = gpu.records
    kind = "decode_step" if tokens == 1 else "prefill"
    assert rec.kernel == f"sw.duo_attention.{kind}" and rec.passed and rec.launches > 0
    assert rec.shape == (1, 4, 2, tokens, 64, 16) and rec.err_bound == 1e-5
    assert float((out - mod(q, k, v, 64 - tokens)).abs().max()) < 1e-5
    with pytest.raises(ValueError, match="built for"):
        e2e_gpu.gpu_duo_attention(mod, q, k, v, 3, gpu, "attn#2")


def _untriton(monkeypatch, off: int) -> None:
    """``sw.int8_gemm.int8_gemm`` on its torch path (no launch), its first code ``off``."""
    real = sw.int8_gemm.int8_gemm

    def fake(a, b, **_):
        c = real(a, b, backend="torch")
        c[0, 0] += off
        return c

    monkeypatch.setattr(sw.int8_gemm, "int8_gemm", fake)


@pytest.mark.parametrize("off", [0, 1])
def test_a_kernel_that_did_not_launch_fails(monkeypatch, off):
    """The right product without a launch fails (launches 0), and so does a wrong one."""
    _untriton(monkeypatch, off)
    run = e2e.run_e2e("tiny-llama2-7b-duo", GEMMINI, engine="ref")
    linears = [op for op in run.gpu_ops if op.kernel == "sw.int8_gemm.int8_gemm"]
    assert linears and all(op.launches == 0 and op.bit_exact == (off == 0) for op in linears)
    assert not run.gpu_within_bounds and not run.passed and not run.report()["pass"]
    assert run.bit_exact and run.within_bounds                  # the accelerator's is fine
    assert all(op.passed for op in run.gpu_ops if op not in linears)


def test_without_the_gpu_run():
    run = e2e.run_e2e("tiny-llama2-7b-duo", GEMMINI, engine="ref", gpu=False)
    assert run.passed and run.gpu_ops == () and run.gpu_seconds is None
    report = run.report()
    assert report["max_err_gpu"] is report["rel_err_gpu"] is report["gpu_vs_accel"] is None
    assert report["gpu_ops"] == 0 and report["pass"]
