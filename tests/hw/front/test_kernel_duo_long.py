"""A retrieval head's decode step over key blocks streamed from DRAM (two passes: the row max,
then the weights against it): outputs equal golden.attention_fixed.attention_head_int's for
the query over every key, whatever the block size; the softmax max / scaled commands."""

import numpy as np
import pytest

from golden.attention_fixed import attention_head_int, logit_multiplier, weights_below_max
from hw.front.arch import load_arch
from hw.front.isa import ProgramError, assemble
from hw.front.isa_machine import Machine
from hw.front.kernel_duo import attention_config
from hw.front.kernel_duo_long import (
    LongDecode,
    largest_block,
    long_decode_program,
    run_long_decode,
)
from hw.front.spec_model import SpecError
from tests.hw.accel_cases import tiny_arch

FUSED = load_arch("examples/arch/lego_fused.yaml")
TINY = tiny_arch("units")


def _head(arch, g, keys, d, dv, seed, scale=1 / 64):
    rng = np.random.default_rng(seed)
    q, k = rng.integers(-128, 128, (g, d)), rng.integers(-128, 128, (keys, d))
    v = rng.integers(-128, 128, (keys, dv))
    cfg = attention_config(arch)
    mult, shift = logit_multiplier(scale, scale, d, cfg)
    return q, k, v, mult, shift, attention_head_int(q, k, v, mult, shift, None, cfg)


@pytest.mark.parametrize("keys,kb", [(1, None), (37, 8), (64, 16), (65, 16), (300, None)])
def test_tiny_heads_equal_golden_for_any_block(keys, kb):
    q, k, v, mult, shift, want = _head(TINY, 2, keys, 4, 4, keys)
    run = run_long_decode(TINY, q, k, v, mult, shift, kb)
    np.testing.assert_array_equal(run.output, want)


def test_fused_head_at_a_context_that_outgrows_the_scratchpad():
    """4 query heads, d 128, 3000 keys: a 750 KiB cache, three times the scratchpad."""
    q, k, v, mult, shift, want = _head(FUSED, 4, 3000, 128, 128, 1)
    run = run_long_decode(FUSED, q, k, v, mult, shift)
    np.testing.assert_array_equal(run.output, want)
    assert largest_block(FUSED, 4, 128, 128) < 3000


def test_softmax_max_and_scaled_commands():
    """max folds a running row max (replacing it with shift=1); scaled weighs against it and
    writes the row sum to element 1; a logit above the held max is an error."""
    m = Machine(TINY, 64)
    x = np.array([[3, -7, 250, 9], [-40, -41, -39, -100]])
    m.accumulator[0:2, :] = x
    m.accumulator[10:12, 0] = [500, -1000]
    m.run(assemble("unit unit=softmax mode=max src=0 rows=2 cols=3 arg=10", TINY))
    assert list(m.accumulator[10:12, 0]) == [500, -39]
    m.run(assemble("unit unit=softmax mode=max src=0 rows=2 cols=3 arg=10 shift=1", TINY))
    assert list(m.accumulator[10:12, 0]) == [250, -39]
    m.run(assemble("unit unit=softmax mode=scaled src=0 dst=20 rows=2 cols=3 arg=10", TINY))
    cfg = attention_config(TINY)
    w = weights_below_max(x[:, :3], m.accumulator[10:12, :1], cfg)
    np.testing.assert_array_equal(m.scratchpad[20:22, :3], w)
    np.testing.assert_array_equal(m.accumulator[10:12, 1], w.sum(axis=1))
    m.accumulator[10, 0] = 0
    with pytest.raises(ProgramError, match="exceeds its row's maximum"):
        m.run(assemble("unit unit=softmax mode=scaled src=0 dst=20 rows=2 cols=3 arg=10",
                       TINY))


def test_blocks_that_do_not_fit_are_refused():
    with pytest.raises(SpecError, match=r"does not fit .* \(largest block: 72\)"):
        long_decode_program(TINY, LongDecode(2, 10, 4, 4, 1, 0, 4096))
    with pytest.raises(ValueError, match="kb must be a positive int"):
        LongDecode(2, 10, 4, 4, 1, 0, 0)
