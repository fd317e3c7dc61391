"""DuoAttention KV heads on the reference machine, one program per chunk, the cache kept in
the scratchpad: outputs bit-exact against golden.attention_cache_fixed for streaming and
retrieval heads, chunked prefill then decode, GQA groups, the ring's wrap exactly at its
boundary, sequences shorter than sink + recent, extremes; the cache's contents equal golden's;
a step's program built at its position alone equals the head's."""

import numpy as np
import pytest

from golden.attention_cache_fixed import FullCacheFixed, StreamingCacheFixed
from golden.attention_fixed import logit_multiplier
from hw.front.arch import load_arch
from hw.front.kernel_duo import DuoHead, attention_config, duo_step_program, duo_steps
from hw.front.spec_model import SpecError
from tests.hw.accel_cases import tiny_arch

FUSED = load_arch("examples/arch/lego_fused.yaml")


def _run(arch, q, k, v, chunks, window=None, scale=0.02, max_chunk=16):
    cfg = attention_config(arch)
    d, dv = k.shape[1], v.shape[1]
    mult, shift = logit_multiplier(scale, scale, d, cfg)
    head = DuoHead(arch, q, k, v, mult, shift, *(window or (None, None)), max_chunk=max_chunk)
    ref = (StreamingCacheFixed(d, *window, mult, shift, cfg, dv) if window
           else FullCacheFixed(d, mult, shift, cfg, dv))
    start, outs = 0, []
    for c in chunks:
        got = head.step(c)
        want = ref.step(q[:, start:start + c], k[start:start + c], v[start:start + c])
        np.testing.assert_array_equal(got, want, err_msg=f"chunk at {start}")
        outs.append(got)
        start += c
    return head, ref, np.concatenate(outs, axis=1)


def _codes(rng, g, t, d, dv):
    return (rng.integers(-128, 128, (g, t, d)), rng.integers(-128, 128, (t, d)),
            rng.integers(-128, 128, (t, dv)))


@pytest.mark.parametrize("window", [(4, 12), (0, 1), (1, 16), None])
def test_prefill_then_decode_bit_exact(window):
    rng = np.random.default_rng(7)
    q, k, v = _codes(rng, 2, 60, 32, 32)
    head, ref, out = _run(FUSED, q, k, v, [16, 16, 13, 1, 1, 1, 5, 7], window)
    assert np.abs(out).max() > 0
    if window:                                   # the cache holds what golden's holds
        e, lay = head.lay.edge, head.lay
        for slot, pos in enumerate(ref.positions):
            if pos >= 0:
                kt = head.machine.scratchpad[lay.kt + (slot // e) * 32:
                                             lay.kt + (slot // e + 1) * 32, slot % e]
                np.testing.assert_array_equal(kt, ref.k[slot])
                np.testing.assert_array_equal(head.machine.scratchpad[lay.v + slot, :16],
                                              ref.v[slot, :16])


def test_ring_wraps_exactly_at_its_boundary_and_short_sequences():
    rng = np.random.default_rng(3)
    q, k, v = _codes(rng, 1, 40, 16, 16)
    _run(FUSED, q, k, v, [3, 2], (2, 8))             # shorter than sink + recent
    _run(FUSED, q, k, v, [10, 8, 1, 1, 10], (2, 8))  # 10 = sink + recent, 18 = one wrap


def test_extremes_all_negative_logits_and_saturated_codes():
    t, d = 20, 16
    q = np.full((2, t, d), -128)
    k = np.full((t, d), 127)                         # every logit the same large negative
    v = np.full((t, d), -128)
    _run(FUSED, q, k, v, [8, 1, 1, 10], (2, 4), scale=0.5)
    _run(FUSED, -q - 1, k, np.full((t, d), 127), [16, 4], None, scale=0.5)


def test_tiny_architecture():
    arch = tiny_arch("units")
    rng = np.random.default_rng(1)
    q, k, v = _codes(rng, 1, 14, 8, 8)
    _run(arch, q, k, v, [4, 3, 1, 1, 4], (1, 5), max_chunk=4)
    _run(arch, q, k, v, [4, 1, 1, 1, 4], None, max_chunk=4)


def test_errors():
    q, k, v = _codes(np.random.default_rng(0), 1, 8, 8, 8)
    with pytest.raises(SpecError, match="no requant unit"):
        DuoHead(load_arch("examples/arch/gemmini_like.yaml"), q, k, v, 1, 0)
    with pytest.raises(ValueError, match="together"):
        DuoHead(FUSED, q, k, v, 1, 0, sink=4)
    with pytest.raises(ValueError, match="expected"):
        DuoHead(FUSED, q[0], k, v, 1, 0)
    with pytest.raises(SpecError, match="does not fit"):
        DuoHead(tiny_arch("units"), *_codes(np.random.default_rng(0), 4, 200, 8, 8), 1, 0)
    head = DuoHead(FUSED, q, k, v, 1, 0, max_chunk=4)
    with pytest.raises(ValueError, match="chunk must be an int in 1..4"):
        head.step(5)


@pytest.mark.parametrize("window", [(4, 12), None])
def test_step_program_at_a_position_equals_the_heads(window):
    """duo_step_program at length L is the program the stateful head ran after L tokens
    (before, at and after the ring's wrap), without running the steps before it."""
    rng = np.random.default_rng(11)
    q, k, v = _codes(rng, 2, 50, 16, 16)
    head = DuoHead(FUSED, q, k, v, 3, 9, *(window or (None, None)), max_chunk=16)
    steps = duo_steps(FUSED, 2, 50, 16, 16, 3, 9, *(window or (None, None)), max_chunk=16)
    assert steps == head.steps
    for c in (16, 3, 16, 1, 9):
        length = head.length
        head.step(c)
        assert head.last_program == duo_step_program(FUSED, steps, length, c)
    with pytest.raises(ValueError, match="chunk must be an int in 1..5"):
        duo_step_program(FUSED, steps, 45, 6)
    with pytest.raises(SpecError, match="no requant unit"):
        duo_steps(load_arch("examples/arch/gemmini_like.yaml"), 1, 8, 8, 8, 1, 0)
