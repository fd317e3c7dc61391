"""Attention and linear attention costed by the fused kernels' own programs: every attention op
of the tiny models exact (equal to timing the whole program built here from the kernels),
programs composed from short ones equal to the whole program's cycles and counts (tiles of
many key blocks, causal and not, streaming steps whose ring slots fall differently into the
cache's rows), GQA groups, the formats and units the kernels need, through cost_op."""

from dataclasses import replace

import pytest

from hw.front.accel_params import accel_params
from hw.front.accel_timing import accel_timing
from hw.front.arch import arch_from_dict, load_arch
from hw.front.kernel_attention import linear_attention_operands, linear_attention_program
from hw.front.kernel_chain import blocks
from hw.front.kernel_duo import DuoHead, duo_step_program, duo_steps
from hw.front.kernel_duo_long import (
    LongAttention,
    default_tile,
    largest_block,
    long_attention_program,
    query_tiles,
)
from hw.front.program_cost import program_cost
from mapping import zoo
from mapping.accel_attention import attention_cost, clear_cache
from mapping.accel_cost import Unmappable, arch_energies, cost_op
from mapping.ir import Attention, LinearAttention
from tests.hw.accel_cases import tiny_arch, tiny_arch_dict

FUSED = load_arch("examples/arch/lego_fused.yaml")
GEMMINI = load_arch("examples/arch/gemmini_like.yaml")
TINY = tiny_arch("units")
_COUNTS = ("cycles", "macs", "padded_macs", "dram_bytes", "instructions", "scratchpad_reads",
           "scratchpad_writes", "accumulator_reads", "accumulator_writes")


def _int8(op):
    if isinstance(op, LinearAttention):
        return replace(op, fmt="int8")
    return replace(op, fmt="int8", kv_fmt="int8")


def _program(arch, op):
    """One head's whole program, built here from the kernels (the lowering of
    mapping.accel_attention's docstring)."""
    if isinstance(op, LinearAttention):
        ops = linear_attention_operands(arch, op.tokens, op.head_dim, op.head_dim)
        return linear_attention_program(arch, ops)
    g, d, q, k = op.q_heads // op.kv_heads, op.head_dim, op.q_tokens, op.kv_tokens
    if op.window:
        chunk = DuoHead.largest_chunk(arch, g, k, d, d, op.window, limit=q)
        head = duo_steps(arch, g, k, d, d, 1, 0, *op.window, max_chunk=chunk)
        return [ins for s0, sn in blocks(q, chunk)
                for ins in duo_step_program(arch, head, k - q + s0, sn)]
    tile = 1 if q == 1 else min(default_tile(arch, g, d, d), q)
    kb = largest_block(arch, g, d, d, c=tile)
    return [ins for t in query_tiles(g, q, k, d, d, 1, 0, tile, kb, op.causal)
            for ins in long_attention_program(arch, t)]


def _assert_whole(arch, op, cost):
    """``cost`` is ``repeat`` times the whole program's cycles and counts."""
    program = _program(arch, op)
    pc, r = program_cost(program, arch), cost.schedule["repeat"]
    assert cost.cycles == accel_timing(program, accel_params(arch)).cycles * r
    assert (cost.instructions, cost.macs, cost.padded_macs, cost.dram_bytes) == (
        len(program) * r, pc.macs * r, pc.padded_macs * r, pc.dram_bytes * r)
    assert (cost.scratchpad_reads, cost.scratchpad_writes, cost.accumulator_reads,
            cost.accumulator_writes) == (
        pc.scratchpad_row_reads * r, pc.scratchpad_row_writes * r,
        pc.accumulator_row_reads * r, pc.accumulator_row_writes * r)


def _attention_ops(name, **options):
    found = {}
    for stage in zoo.model(name, **options).stages:
        for op in stage.ops:
            if isinstance(op, (Attention, LinearAttention)):
                found.setdefault(_int8(replace(op, name="x")), op.name)
    return list(found)


TINY_MODELS = [(f"tiny-{name}", {}) for name in ("flux1-dev", "sana-0.6b", "sana-1.6b",
                                                 "llama3-8b-duo", "llama2-7b-duo", "vila-u")]
TINY_MODELS += [("tiny-llama3-8b-duo", {"phase": "prefill"}),
                ("tiny-llama2-7b-duo", {"phase": "prefill"})]


@pytest.mark.parametrize("name,options", TINY_MODELS)
def test_every_attention_op_of_the_tiny_models_is_exact(name, options):
    ops = _attention_ops(name, **options)
    assert ops
    for op in ops:
        cost = cost_op(FUSED, op)
        assert cost.exact and "costed_from" not in cost.schedule
        _assert_whole(FUSED, op, cost)


@pytest.mark.parametrize("arch,op", [
    (FUSED, Attention("decode", 1, 4, 1, 32, 1, 3000, causal=True)),
    (FUSED, Attention("prefill", 1, 2, 2, 32, 100, 1400, causal=True)),
    (FUSED, Attention("gqa", 1, 4, 2, 64, 70, 700, causal=True)),
    (FUSED, Attention("joint", 1, 2, 2, 32, 150, 900)),
    (FUSED, Attention("cross", 1, 1, 1, 112, 200, 300)),
    (FUSED, Attention("stream", 2, 4, 2, 32, 60, 2000, causal=True, window=(16, 48))),
    (FUSED, Attention("ring", 1, 8, 1, 16, 200, 1000, causal=True, window=(5, 90))),
    (TINY, Attention("prefill", 1, 2, 1, 4, 30, 200, causal=True)),
    (TINY, Attention("joint", 1, 2, 2, 4, 40, 150)),
    (TINY, Attention("ring", 1, 1, 1, 4, 60, 64, causal=True, window=(3, 21))),
    (TINY, Attention("ring", 1, 2, 1, 4, 61, 61, causal=True, window=(5, 22))),
])
def test_composed_equals_the_whole_program(arch, op):
    """Composed (exact_below=0): key blocks, tiles and steps of each kind once, their
    junctions; equal to the whole program's cycles and counts (built here)."""
    op = _int8(op)
    composed = attention_cost(arch, op, exact_below=0)
    assert not composed.exact and "costed_from" in composed.schedule
    whole = attention_cost(arch, op, exact_below=1 << 62)
    assert whole.exact
    for name in _COUNTS:
        assert getattr(composed, name) == getattr(whole, name), name
    _assert_whole(arch, op, composed)


def test_a_flux_joint_attention_is_composed():
    """FLUX.1's 4608 x 4608 joint attention, 24 heads of 128: 101 tiles of 46 queries over
    24 blocks of 192 keys, costed from short programs; the array busy most of the time."""
    op = _int8(Attention("attn", 1, 24, 24, 128, 4608, 4608))
    cost = attention_cost(FUSED, op)
    s = cost.schedule
    assert (s["lowering"], s["tile"], s["block"], s["tiles"], s["repeat"]) == (
        "long_attention", 46, 192, 101, 24)
    assert not cost.exact and cost.bound == "compute" and 0.5 < cost.utilization < 1
    assert cost.macs > op.macs and cost.cycles > cost.roofline_cycles


def test_gqa_group_runs_in_one_program_per_kv_head():
    """8 query heads over 2 KV heads: 2 programs of a group of 4 (one decode tile)."""
    op = _int8(Attention("gqa", 1, 8, 2, 32, 1, 500, causal=True))
    cost = attention_cost(FUSED, op)
    tile = LongAttention(4, 1, 500, 32, 32, 1, 0, largest_block(FUSED, 4, 32, 32))
    program = long_attention_program(FUSED, tile)
    assert cost.schedule["group"] == 4 and cost.schedule["repeat"] == 2
    assert cost.cycles == 2 * accel_timing(program, accel_params(FUSED)).cycles
    assert cost.macs == 2 * program_cost(program, FUSED).macs
    one = attention_cost(FUSED, replace(op, q_heads=4, kv_heads=1))
    assert 2 * one.cycles == cost.cycles and 2 * one.energy_pj == pytest.approx(cost.energy_pj)


def test_causal_costs_less_than_non_causal_and_queries_may_outnumber_keys():
    causal = attention_cost(FUSED, _int8(Attention("c", 1, 2, 2, 32, 300, 300, causal=True)))
    full = attention_cost(FUSED, _int8(Attention("n", 1, 2, 2, 32, 300, 300)))
    assert causal.cycles < full.cycles and causal.macs < full.macs
    assert (causal.schedule["causal"], full.schedule["causal"]) == (True, False)
    cross = attention_cost(FUSED, _int8(Attention("x", 1, 2, 2, 32, 100, 30)))
    _assert_whole(FUSED, _int8(Attention("x", 1, 2, 2, 32, 100, 30)), cross)


def test_linear_attention_is_one_program_per_head():
    op = _int8(LinearAttention("lite", 2, 3, 32, 700))
    cost = attention_cost(FUSED, op)
    assert cost.exact and cost.schedule["repeat"] == 6 and cost.dataflow == "weight_stationary"
    _assert_whole(FUSED, op, cost)


def test_decode_steps_of_a_streaming_head():
    """A decode over a full ring: one step of one token; the cache resident, so the DRAM
    moves only the query, the new key and value, and the output."""
    op = _int8(Attention("s", 1, 4, 1, 64, 1, 5000, causal=True, window=(16, 48)))
    cost = attention_cost(FUSED, op)
    assert cost.exact and (cost.schedule["steps"], cost.schedule["chunk"]) == (1, 1)
    _assert_whole(FUSED, op, cost)
    assert cost.dram_bytes == 4 * 64 + 2 * 64 * 2 + 4 * 64 * 4


def test_energy_and_record():
    op = _int8(Attention("a", 1, 2, 2, 32, 20, 40, causal=True))
    cost = attention_cost(FUSED, op)
    e = arch_energies(FUSED)
    assert cost.energy_breakdown["mac"] == pytest.approx(cost.padded_macs * e["mac"])
    assert cost.energy_breakdown["dram"] == pytest.approx(cost.dram_bytes * e["dram_byte"])
    assert cost.energy_pj == pytest.approx(sum(cost.energy_breakdown.values()))
    assert (cost.op, cost.target, cost.arch) == ("a", "accel", "lego_fused")
    assert cost.utilization == pytest.approx(cost.macs / (FUSED.pes * cost.cycles))
    assert any(f"for the op's {op.macs}" in n for n in cost.notes)


def test_unmappable_says_what_is_missing():
    op = _int8(Attention("attn", 1, 2, 2, 16, 8, 8))
    with pytest.raises(Unmappable, match="needs the requant, softmax, normalizer, kv_cache "
                                         "units; the architecture has no requant, softmax, "
                                         "normalizer, kv_cache"):
        cost_op(GEMMINI, op)
    with pytest.raises(Unmappable, match="attention 'attn' cannot run on 'lego_fused': fmt is "
                                         "bf16: the attention kernels take int8"):
        cost_op(FUSED, replace(op, fmt="bf16", kv_fmt="bf16"))
    with pytest.raises(Unmappable, match="kv_fmt is fp8_e4m3"):
        attention_cost(FUSED, replace(op, kv_fmt="fp8_e4m3"))
    with pytest.raises(Unmappable, match="fmt is bf16"):
        attention_cost(FUSED, LinearAttention("la", 1, 2, 16, 8))
    with pytest.raises(Unmappable, match="'la' .* has no requant, normalizer, operand_relu"):
        attention_cost(GEMMINI, LinearAttention("la", 1, 2, 16, 8, fmt="int8"))
    no_kv = tiny_arch_dict("units")
    del no_kv["units"]["kv_cache"]
    for window in ((1, 4), None):      # the softmax reads its mask from a kv descriptor
        with pytest.raises(Unmappable, match="the architecture has no kv_cache"):
            attention_cost(arch_from_dict(no_kv), replace(op, causal=True, window=window))
    with pytest.raises(Unmappable, match="does not fit"):
        attention_cost(TINY, replace(op, head_dim=512))
    with pytest.raises(Unmappable, match="run on weight_stationary .*given: output_stationary"):
        cost_op(FUSED, op, dataflows=("output_stationary",))


def test_deterministic_and_memoized():
    op = _int8(Attention("a", 1, 4, 2, 32, 50, 900, causal=True))
    first = attention_cost(FUSED, op, exact_below=0).to_dict()
    clear_cache()
    assert attention_cost(FUSED, op, exact_below=0).to_dict() == first
    again = cost_op(FUSED, replace(op, name="other"), exact_below=0)
    assert again.op == "other" and again.cycles == first["cycles"]
