"""Mapped steps lowered to runnable programs (mapping.lower): every accelerator step of the
tiny models on both shipped architectures rebuilds the program the cost model timed (its
cycles x runs are the mapped cycles, exact or composed), GEMMs and convolutions leave golden's
results in the reference DRAM, a DuoAttention step after its setup computes what the whole
head computes; host steps and oversized programs are refused; the saved folder holds
everything or nothing. No RTL here (tests/flows/test_map_rtl.py)."""

from __future__ import annotations

import json
from dataclasses import replace
from functools import cache

import numpy as np
import pytest

from golden.int_gemm import int_gemm
from golden.loop_nest import conv2d
from hw.front.arch import load_arch
from hw.front.isa import decode
from hw.front.isa_machine import unpack
from hw.front.kernel_duo import DuoHead, duo_steps
from hw.front.kernel_runs import conv_operands, gemm_operands
from mapping import zoo
from mapping.accel_cost import cost_op
from mapping.ir import Attention, Conv2d, Linear, Norm
from mapping.lower import MAX_INSTRUCTIONS, LoweredStep, lower_model, lower_step, save_lowered
from mapping.mapper import map_op

ARCHS = {name: load_arch(f"examples/arch/{name}.yaml") for name in ("lego_fused",
                                                                   "gemmini_like")}
TINY = tuple(name for name in zoo.MODELS if name.startswith("tiny-"))
FUSED = ARCHS["lego_fused"]
#: accelerator steps of the tiny models whose cost is composed from shorter programs
#: (mapping.accel_svdquant: layers of more than three n-tiles), not timed whole: their whole
#: program's cycles are asserted equal all the same
COMPOSED = {"lego_fused": {"svdquant"}, "gemmini_like": set()}


@cache
def _lowered(arch_name: str, model: str) -> tuple[LoweredStep, ...]:
    return tuple(lower_model(zoo.model(model), ARCHS[arch_name]))


def _ints(data: bytes, addr: int, shape: tuple[int, ...], t) -> np.ndarray:
    size = int(np.prod(shape))
    return unpack(data[addr:addr + size * t.bits // 8], size, t).reshape(shape)


def _check_gemm(arch, step: LoweredStep) -> None:
    m, n, k = step.schedule["extents"]
    ops, (a_t, b_t, c_t) = gemm_operands(arch, m, n, k), arch.types
    a = _ints(step.dram_in, ops.a_addr, (m, k), a_t)
    b = _ints(step.dram_in, ops.b_addr, (k, n), b_t)
    want = int_gemm(a, b, a_t, b_t, c_t.bits)
    np.testing.assert_array_equal(_ints(step.dram_out, ops.c_addr, (m, n), c_t), want)


@pytest.mark.parametrize("arch_name", ARCHS)
def test_tiny_models_lower_to_their_costs(arch_name):
    """Every step's program times to the mapped cycles; composed steps are the expected
    ones; GEMM outputs are golden's."""
    arch, composed, kinds = ARCHS[arch_name], set(), set()
    for model in TINY:
        steps = _lowered(arch_name, model)
        assert steps and len({(s.dataflow, json.dumps(s.schedule)) for s in steps}) == len(
            steps)
        for step in steps:
            assert step.model_cycles * step.runs == step.cycles, step.name
            assert step.run_cycles == step.model_cycles or step.setup, step.name
            assert len(step.dram_in) == len(step.dram_out)
            kinds.add(step.lowering)
            if not step.exact:
                composed.add(step.lowering)
            if step.lowering == "gemm":
                _check_gemm(arch, step)
    assert composed == COMPOSED[arch_name]
    want = {"gemm", "svdquant", "duo_steps", "linear_attention"} if arch.units.softmax \
        else {"gemm"}
    assert kinds == want


def test_instructions_match_the_cost():
    """The lowered program is as long as the cost says a run is (tiny FLUX.1 on lego_fused:
    SVDQuant layers composed, GEMMs whole)."""
    graph = zoo.model("tiny-flux1-dev")
    for stage, op in graph.walk():
        for cost in map_op(FUSED, op).steps:
            if cost.target == "accel":
                step = lower_step(FUSED, cost)
                assert len(step.program) * step.runs == cost.instructions, (stage.name, op)


def test_conv_and_long_attention_lower_exactly():
    """The lowerings no tiny model picks: a 3x3 convolution (golden's output) and causal and
    non-causal retrieval heads of several query tiles."""
    conv = cost_op(FUSED, Conv2d("c", 2, 5, 7, 6, 6, 3, act_fmt="int8", weight_fmt="int8"))
    step = lower_step(FUSED, conv, seed=3)
    assert step.lowering == "conv2d" and step.model_cycles * step.runs == conv.cycles
    c, h, w, kk, r, s = step.schedule["extents"]
    ops, t = conv_operands(FUSED, c, h, w, kk, r, s), FUSED.types
    image = _ints(step.dram_in, ops.i_addr, (c, h, w), t[0])
    weights = _ints(step.dram_in, ops.w_addr, (r, s, kk, c), t[0]).transpose(2, 3, 0, 1)
    np.testing.assert_array_equal(_ints(step.dram_out, ops.o_addr, ops.out_shape, t[2]),
                                  conv2d(image, weights, 32))
    for causal in (True, False):
        op = Attention("a", 1, 4, 2, 32, 40, 72, causal=causal, fmt="int8")
        cost = cost_op(FUSED, op)
        step = lower_step(FUSED, cost)
        assert step.lowering == "long_attention" and cost.schedule["tiles"] > 1
        assert step.model_cycles * step.runs == cost.cycles and step.runs == 2


def test_duo_step_after_its_setup_is_the_whole_head():
    """The streaming head's decode step, after the setup (reset, the sink and recent
    positions' steps, the others skipped), outputs what the head run over every position
    outputs at the last one."""
    layer = zoo.model("tiny-llama3-8b-duo").stage("layer")
    cost = map_op(FUSED, next(op for op in layer.ops if op.name == "attn_streaming")).steps[0]
    s = cost.schedule
    assert s["lowering"] == "duo_steps" and s["queries"] == 1
    step = lower_step(FUSED, cost)
    assert step.setup and step.setup[0].op == "unit" and step.run_cycles > step.model_cycles
    g, d, k = s["group"], s["head_dim"], s["keys"]
    addr = duo_steps(FUSED, g, k, d, d, 1, 0, *s["window"], max_chunk=s["chunk"]).addr
    a_t, c_t = FUSED.types[0], FUSED.types[2]
    q, kk, v = (_ints(step.dram_in, a, shape, a_t)
                for a, shape in zip(addr, ((g, k, d), (k, d), (k, d)), strict=False))
    head = DuoHead(FUSED, q, kk, v, 1, 0, *s["window"], max_chunk=s["chunk"])
    for _ in range(k - 1):
        head.step(1)
    want = head.step(1)[:, 0]
    got = _ints(step.dram_out, addr[3], (g, k, d), c_t)[:, k - 1]
    np.testing.assert_array_equal(got, want)
    assert np.abs(want).max() > 0


def test_seeded_operands():
    cost = map_op(FUSED, Linear("l", 8, 64, 32, "int8", "int8")).steps[0]
    one, same, other = (lower_step(FUSED, cost, seed=seed) for seed in (1, 1, 2))
    assert one == same and one.program == other.program and one.dram_in != other.dram_in


def test_refusals():
    host = map_op(FUSED, Norm("n", "rms", 4, 64)).steps[0]
    with pytest.raises(ValueError, match="'n' runs on the host .*no accelerator program"):
        lower_step(FUSED, host)
    big = cost_op(FUSED, Linear("big", 2048, 2048, 2048, "int8", "int8"))
    assert big.instructions > MAX_INSTRUCTIONS
    with pytest.raises(ValueError, match=f"'big' .* more than the {MAX_INSTRUCTIONS}"):
        lower_step(FUSED, big)
    small = cost_op(FUSED, Linear("small", 16, 64, 64, "int8", "int8"))
    with pytest.raises(ValueError, match="more than the 10 lowered"):
        lower_step(FUSED, small, max_instructions=10)
    with pytest.raises(ValueError, match="mapped onto 'lego_fused', not 'gemmini_like'"):
        lower_step(ARCHS["gemmini_like"], small)
    odd = replace(small, schedule={**small.schedule, "lowering": "winograd"})
    with pytest.raises(ValueError, match="no lowering for 'winograd'"):
        lower_step(FUSED, odd)


def test_save_lowered(tmp_path):
    steps = list(_lowered("lego_fused", "tiny-llama3-8b-duo"))
    out = save_lowered(steps, tmp_path / "llama")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["word_bytes"] == 16 and len(manifest["steps"]) == len(steps)
    for entry, step in zip(manifest["steps"], steps, strict=True):
        raw = (out / entry["words"]).read_bytes()
        words = [decode(int.from_bytes(raw[i:i + 16], "little"))
                 for i in range(0, len(raw), 16)]
        assert tuple(words) == step.words and entry["instructions"] == len(words)
        assert (out / entry["dram_in"]).read_bytes() == step.dram_in
        assert (out / entry["dram_out"]).read_bytes() == step.dram_out
        assert (entry["name"], entry["run_cycles"], entry["mapped_cycles"]) == (
            step.name, step.run_cycles, step.cycles)
        assert entry["dram_latency"] == FUSED.dram.latency_cycles
    assert sorted(p.name for p in tmp_path.iterdir()) == ["llama"]
    with pytest.raises(ValueError, match="it exists"):
        save_lowered(steps, out)
    with pytest.raises(ValueError, match=r"steps\[1\] is a str, not a LoweredStep"):
        save_lowered([steps[0], "oops"], tmp_path / "bad")
    with pytest.raises(ValueError, match="does not exist"):
        save_lowered(steps, tmp_path / "missing" / "x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["llama"]
