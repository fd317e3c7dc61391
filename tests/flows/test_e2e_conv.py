"""``flows.e2e_conv``: Sana's pointwise convolutions as W8A8 GEMMs on the accelerator (records
bit-exact against golden, within the W8A8 bound, model = the mapper's cost of the importer's
``Conv2d``), on the GPU equal to the accelerator bit for bit; the depthwise 3x3 costed on the
host as the mapper's ``host`` candidate; fast (reference engine)."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

import flows.e2e as e2e
import flows.e2e_conv as e2e_conv
from flows.e2e_conv import gpu_pointwise_conv, is_pointwise, pointwise_conv
from flows.e2e_host import placed_ops
from hw.front.arch import load_arch
from mapping.host_cost import host_depthwise_cost
from mapping.ir import Conv2d
from mapping.mapper import map_op

from .test_e2e import _off_by_one
from .test_e2e_host import _twin

FUSED = load_arch("examples/arch/lego_fused.yaml")
GEMMINI = load_arch("examples/arch/gemmini_like.yaml")
_CONVS = ("x_embed", "ffn_inverted", "ffn_point")


@functools.cache
def _run(arch: str) -> e2e.E2ERun:
    return e2e.run_e2e("tiny-sana-0.6b", {"lego_fused": FUSED, "gemmini_like": GEMMINI}[arch],
                       engine="ref", gpu=False)


def _conv_records(run: e2e.E2ERun) -> list[e2e.OpRecord]:
    return [op for op in run.ops if op.name.split("#")[0].rsplit(".", 1)[-1] in _CONVS]


def test_is_pointwise():
    assert is_pointwise(torch.nn.Conv2d(4, 8, 1))
    assert is_pointwise(torch.nn.Conv2d(4, 8, 1, padding="valid"))
    for conv in (torch.nn.Conv2d(4, 8, 3, padding=1), torch.nn.Conv2d(4, 8, 1, stride=2),
                 torch.nn.Conv2d(4, 8, 1, padding=1), torch.nn.Conv2d(4, 8, 1, groups=4),
                 torch.nn.Linear(4, 8)):
        assert not is_pointwise(conv)


@pytest.mark.parametrize("arch", ["lego_fused", "gemmini_like"])
def test_pointwise_convs_are_accelerator_records(arch):
    run = _run(arch)
    convs = _conv_records(run)
    # x_embed once, two blocks' ffn_inverted and ffn_point
    assert sorted(op.name for op in convs) == sorted(
        ["embed.x_embed#1"] + [f"blocks.{b}.{n}#1" for b in (0, 1)
                               for n in ("ffn_inverted", "ffn_point")])
    assert all(op.bit_exact and op.err <= op.err_bound and op.cycles_match
               for op in convs)
    assert run.passed and run.bit_exact
    # the record's mapper cost is the mapper's cost of the importer's Conv2d for the call
    model, inputs = _twin("tiny-sana-0.6b")
    arch_spec = FUSED if arch == "lego_fused" else GEMMINI
    placed = {p.name: p.op for p in placed_ops(model, inputs, arch_spec) if p.accel}
    for op in convs:
        ir = placed[op.name]
        assert isinstance(ir, Conv2d) and ir.kernel == 1
        assert op.mapper_cycles == op.model_cycles == map_op(arch_spec, ir).cycles
        assert op.shape == (ir.batch * ir.h * ir.w, ir.c_in, ir.c_out)


def test_a_wrong_conv_product_is_caught(monkeypatch):
    _off_by_one(monkeypatch, e2e_conv, "run_gemm")
    run = e2e.run_e2e("tiny-sana-0.6b", FUSED, engine="ref", gpu=False)
    assert not run.bit_exact and not run.passed
    convs = _conv_records(run)
    assert convs and not any(op.bit_exact for op in convs)
    assert all(op.bit_exact for op in run.ops if op not in convs)


def test_gpu_conv_equals_accelerator_conv():
    from flows.e2e_gpu import GpuRunner

    torch.manual_seed(0)
    conv = torch.nn.Conv2d(24, 40, 1)
    x = torch.randn(2, 24, 3, 5)
    gemms = e2e._Gemms(FUSED, "ref")
    accel = pointwise_conv(torch, conv, x, gemms, "c#1")
    runner = GpuRunner()
    gpu = gpu_pointwise_conv(conv, x, runner, "c#1")
    gold = pointwise_conv(torch, conv, x, e2e._Gemms(FUSED, None), "c#1")
    assert torch.equal(accel, gpu) and torch.equal(accel, gold)
    (rec,), (grec,) = gemms.records, runner.records
    assert rec.bit_exact and rec.cycles_match and rec.shape == grec.shape == (30, 24, 40)
    assert grec.passed and grec.bit_exact
    ref = conv(x).detach().numpy()
    assert np.abs(accel.numpy() - ref).max() <= rec.err_bound


def test_host_costs_the_depthwise_conv():
    run = _run("lego_fused")
    dw = [op for op in run.host_ops if op.kind == "conv2d"]
    assert [op.name for op in dw] == [f"blocks.{b}.ffn_depthwise#1" for b in (0, 1)]
    model, inputs = _twin("tiny-sana-0.6b")
    ir = {p.name: p.op for p in placed_ops(model, inputs, FUSED)}
    for op in dw:
        cost = host_depthwise_cost(FUSED, ir[op.name])
        assert op.costed and op.what == "depthwise" and op.cycles == cost.cycles
        assert op.fp32_ops == 2 * op.macs == 2 * 9 * ir[op.name].c_out * 16
    assert "conv2d" not in run.report()["host_uncosted"]


def test_mapper_has_the_host_candidate_of_a_depthwise_conv():
    dw = Conv2d("dw", 1, 320, 320, 4, 4, 3, groups=320, bias=True)
    ch = map_op(FUSED, dw)
    assert "host" in ch.candidates and "im2col" in ch.candidates
    assert ch.candidates["host"] == host_depthwise_cost(FUSED, ch.deployed).cycles
    # a dense conv has no host candidate; a MAC-free op only the host's
    assert "host" not in map_op(FUSED, Conv2d("c", 1, 8, 8, 4, 4, 3)).candidates
    with pytest.raises(ValueError, match="not a depthwise"):
        host_depthwise_cost(FUSED, Conv2d("c", 1, 8, 8, 4, 4, 3))
