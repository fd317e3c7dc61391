"""Decomposed lowerings (mapping.decompose), the host (mapping.host_cost) and the precision
policy (mapping.policy): step structure, counts against closed forms, clear errors."""

from __future__ import annotations

import pytest

from hw.front.arch import load_arch
from mapping.accel_cost import cost_op
from mapping.decompose import (
    attention_block_keys,
    group_partials,
    im2col_conv,
    k_split,
    unfused_attention,
    unfused_linear_attention,
)
from mapping.energy import dram_pj_per_byte, fp_op_pj
from mapping.host_cost import Host, host_op_cost, host_step
from mapping.ir import Attention, Conv2d, Elementwise, Linear, LinearAttention, Matmul, Norm
from mapping.policy import Policy, deploy, runs_grouped
from mapping.vector_work import GROUP_RESCALE_OPS, SOFTMAX_OPS

FUSED = load_arch("examples/arch/lego_fused.yaml")
GEMMINI = load_arch("examples/arch/gemmini_like.yaml")


def test_host_step_roofline_and_energy():
    s = host_step(GEMMINI, "x", "softmax", ops=1600, transcendentals=10, dram_bytes=160)
    assert s.cycles == (1600 + 10 * 8) // 16 and s.bound == "compute"
    assert s.energy_pj == pytest.approx(1680 * fp_op_pj() + 160 * dram_pj_per_byte())
    m = host_step(GEMMINI, "y", "copy", dram_bytes=1601)
    assert m.cycles == 101 and m.bound == "memory" and m.target == "host"
    assert host_step(GEMMINI, "z", "copy", host=Host(lanes=1), ops=7).cycles == 7
    with pytest.raises(ValueError, match="ops must be an int >= 0, got -1"):
        host_step(GEMMINI, "x", "softmax", ops=-1)
    with pytest.raises(ValueError, match="Host.lanes"):
        Host(lanes=0)


def test_host_op_cost():
    op = Norm("n", "rms", 4, 64)
    c = host_op_cost(FUSED, op)
    assert c.dram_bytes == op.weight_read_bytes + op.input_bytes + op.output_bytes
    assert c.schedule["lowering"] == "host_vector"
    with pytest.raises(ValueError, match="contractions run on the array"):
        host_op_cost(FUSED, Linear("l", 1, 16, 16, "int8", "int8"))


def test_attention_block_keys():
    full = Attention("a", 1, 2, 2, 16, 8, 8, fmt="int8")
    assert attention_block_keys(full, 0, 4) == 8
    causal = Attention("a", 1, 2, 2, 16, 8, 24, causal=True, fmt="int8")
    assert attention_block_keys(causal, 0, 4) == 20 and attention_block_keys(causal, 4, 4) == 24
    win = Attention("a", 1, 2, 2, 16, 8, 100, causal=True, window=(4, 8), fmt="int8")
    assert attention_block_keys(win, 0, 4) == 4 + 8 + 3


def test_unfused_attention_steps_and_counts():
    op = Attention("a", 2, 4, 2, 16, 32, 32, causal=True, fmt="int8")
    steps = unfused_attention(GEMMINI, op, 16)
    assert [s.target for s in steps] == ["accel", "host", "accel", "host"] * 2
    # the first block sees 16 keys, the second 32; g = 2 query heads stacked, 4 (batch, kv)
    qk = cost_op(GEMMINI, Matmul("qk", 4, 2 * 16, 16, 16, "int8", "int8"))
    assert steps[0].cycles == qk.cycles and steps[0].macs == 4 * 32 * 16 * 16
    scores = 4 * 32 * 16
    assert steps[1].dram_bytes == scores * 5
    assert steps[1].cycles == -(-(scores * (SOFTMAX_OPS[0] + 8 * SOFTMAX_OPS[1])) // 16)
    with pytest.raises(ValueError, match="int8 codes"):
        unfused_attention(GEMMINI, Attention("a", 1, 1, 1, 16, 4, 4), 4)
    with pytest.raises(ValueError, match="qb must be a positive int"):
        unfused_attention(GEMMINI, op, 0)


def test_unfused_attention_repeats_equal_blocks():
    op = Attention("a", 1, 1, 1, 16, 64, 64, fmt="int8")          # not causal: equal blocks
    steps = unfused_attention(GEMMINI, op, 16)
    assert len(steps) == 4 and steps[0].schedule["times"] == 4
    one = unfused_attention(GEMMINI, Attention("a", 1, 1, 1, 16, 16, 64, fmt="int8"), 16)
    assert steps[0].cycles == 4 * one[0].cycles and steps[1].energy_pj == pytest.approx(
        4 * one[1].energy_pj)


def test_unfused_linear_attention():
    op = LinearAttention("la", 1, 2, 16, 64, fmt="int8")
    steps = unfused_linear_attention(GEMMINI, op)
    assert [s.target for s in steps] == ["host", "accel", "host", "accel", "host"]
    assert steps[1].macs + steps[3].macs == 2 * 2 * 64 * 16 * 17 == op.macs


def test_group_partials_and_k_split():
    op = Linear("fc", 8, 256, 32, "int4_g64", "int4_g64", rank=8)
    steps = group_partials(GEMMINI, op)
    assert steps[0].macs == 8 * 256 * 32                 # 4 groups of 64
    assert steps[1].schedule["lowering"] == "group_rescale"
    assert steps[1].cycles >= 8 * 32 * 4 * GROUP_RESCALE_OPS // 16
    assert sum(s.macs for s in steps) == op.macs
    ks = k_split(FUSED, op, 2)
    assert ks[0].schedule["lowering"] == "svdquant" and ks[0].schedule["times"] == 2
    assert sum(s.macs for s in ks if s.target == "accel") == op.macs
    with pytest.raises(ValueError, match="parts must be an int in 2..4"):
        k_split(FUSED, op, 5)
    with pytest.raises(ValueError, match="integer codes"):
        group_partials(GEMMINI, Linear("f", 1, 64, 8, "bf16", "int4_g64"))


def test_im2col_conv():
    op = Conv2d("c", 1, 8, 16, 10, 10, 3, stride=2, act_fmt="int8", weight_fmt="int8")
    steps = im2col_conv(GEMMINI, op)
    assert steps[1].macs == op.macs and steps[0].target == "host"


def test_policy():
    arch = FUSED
    lin, notes = deploy(Linear("l", 4, 64, 8), arch)
    assert lin.act_fmt.name == "int8" and notes
    same, notes = deploy(Linear("l", 4, 64, 8, "int8", "int8"), arch)
    assert same == Linear("l", 4, 64, 8, "int8", "int8") and notes == ()
    att, _ = deploy(Attention("a", 1, 2, 2, 16, 4, 4), arch)
    assert att.fmt.name == att.kv_fmt.name == "int8"
    kept, _ = deploy(Elementwise("g", "gelu", 10), arch)
    assert kept.fmt.name == "bf16"
    sv = Linear("s", 4, 128, 8, "int4_g64", "int4_g64", rank=4)
    assert not runs_grouped(sv, FUSED) and runs_grouped(sv, GEMMINI)
    w8, notes = deploy(sv, GEMMINI, Policy(grouped="int8"))
    assert w8.rank == 0 and "W8A8" in notes[0]
    for bad in ({"float_as": "int4"}, {"grouped": "x"}):
        with pytest.raises(ValueError, match="Policy"):
            Policy(**bad)
