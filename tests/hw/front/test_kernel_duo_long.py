"""A retrieval head's decode step and prefill chunks over key blocks streamed from DRAM (two
passes: the row max, then the weights against it): outputs equal golden.attention_fixed.
attention_head_int's for the query over every key (causal for a chunk), whatever the block or
tile size; the softmax max / scaled commands, causal too; non-causal tiles (every query over
every key) equal golden's head with no mask."""

import numpy as np
import pytest

from golden.attention_fixed import attention_head_int, logit_multiplier, weights_below_max
from hw.front.arch import load_arch
from hw.front.isa import ProgramError, assemble
from hw.front.isa_machine import Machine
from hw.front.kernel_duo import attention_config
from hw.front.kernel_duo_long import (
    LongAttention,
    default_tile,
    largest_block,
    long_attention_program,
    query_tiles,
    run_long_decode,
    run_long_prefill,
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
        long_attention_program(TINY, LongAttention(2, 1, 10, 4, 4, 1, 0, 4096))
    with pytest.raises(ValueError, match="kb must be a positive int"):
        LongAttention(2, 1, 10, 4, 4, 1, 0, 0)
    with pytest.raises(ValueError, match="kb=4 must be at least c"):
        LongAttention(2, 6, 10, 4, 4, 1, 0, 4, 6)
    with pytest.raises(ValueError, match="out of range"):
        LongAttention(2, 6, 10, 4, 4, 1, 0, 8, 7, 2)
    with pytest.raises(ValueError, match=r"expected \(G, C, D\)"):
        run_long_prefill(TINY, np.zeros((2, 5, 4)), np.zeros((3, 4)), np.zeros((3, 4)), 1, 0)


def _causal_want(arch, q, k, v, mult, shift):
    """golden per query head, each chunk query seeing the keys up to its own position."""
    chunk, keys = q.shape[1], k.shape[0]
    mask = np.arange(keys)[None, :] <= keys - chunk + np.arange(chunk)[:, None]
    cfg = attention_config(arch)
    return np.stack([attention_head_int(qh, k, v, mult, shift, mask, cfg) for qh in q])


@pytest.mark.parametrize("context,chunk,tile", [(0, 7, None), (5, 9, 3), (13, 6, 2),
                                                (0, 1, None), (30, 11, 4)])
def test_prefill_chunks_equal_golden_causal(context, chunk, tile):
    """A chunk after ``context`` cached keys, in query tiles (the tile's own keys one causal
    block): golden's causal head for every query head."""
    rng = np.random.default_rng(chunk)
    q = rng.integers(-128, 128, (2, chunk, 4))
    k, v = (rng.integers(-128, 128, (context + chunk, 4)) for _ in range(2))
    mult, shift = logit_multiplier(1 / 64, 1 / 64, 4, attention_config(TINY))
    run = run_long_prefill(TINY, q, k, v, mult, shift, tile)
    np.testing.assert_array_equal(run.output, _causal_want(TINY, q, k, v, mult, shift))


def test_default_tile_on_the_fused_architecture():
    """4 heads of 128: 17 tokens a tile, blocks of 80 keys (>= 4 a token); the largest tile
    that fits at all is 21."""
    tile = default_tile(FUSED, 4, 128, 128)
    assert (tile, largest_block(FUSED, 4, 128, 128, c=tile)) == (17, 80)
    assert largest_block(FUSED, 4, 128, 128, c=21) == 32
    assert largest_block(FUSED, 4, 128, 128, c=22) == 0


def test_causal_softmax_commands():
    """With shift bit 1, key j of row i is visible iff j <= i mod cols: hidden keys are out
    of the max and weigh 0."""
    m = Machine(TINY, 64)
    x = np.array([[3, 90, 250], [-40, -41, 100], [7, 8, 9], [5, 200, 1]])
    m.accumulator[0:4, :3] = x
    m.run(assemble("unit unit=softmax mode=max src=0 rows=4 cols=3 arg=10 shift=3", TINY))
    assert list(m.accumulator[10:14, 0]) == [3, -40, 9, 5]
    m.run(assemble("unit unit=softmax mode=scaled src=0 dst=20 rows=4 cols=3 arg=10 shift=2",
                   TINY))
    visible = np.array([[1, 0, 0], [1, 1, 0], [1, 1, 1], [1, 0, 0]], bool)
    held = m.accumulator[10:14, :1]
    w = np.where(visible, weights_below_max(np.where(visible, x, held), held,
                                            attention_config(TINY)), 0)
    np.testing.assert_array_equal(m.scratchpad[20:24, :3], w)
    np.testing.assert_array_equal(m.accumulator[10:14, 1], w.sum(axis=1))


@pytest.mark.parametrize("g,queries,keys,tile,kb", [(2, 7, 13, 3, 8), (3, 10, 5, 4, None),
                                                    (1, 1, 9, None, 4), (2, 9, 37, None, 16),
                                                    (2, 6, 22, 6, 4), (4, 5, 3, 2, None)])
def test_non_causal_tiles_equal_golden_without_mask(g, queries, keys, tile, kb):
    """Query tiles that see every key (FLUX.1's joint attention, Sana's cross-attention):
    keys in regular blocks, the last partial, no causal block; tiles longer than the keys, or
    than a block; golden's head with no mask, per query head of the group."""
    rng = np.random.default_rng(100 * g + keys)
    q = rng.integers(-128, 128, (g, queries, 4))
    k, v = (rng.integers(-128, 128, (keys, 4)) for _ in range(2))
    cfg = attention_config(TINY)
    mult, shift = logit_multiplier(1 / 32, 1 / 32, 4, cfg)
    run = run_long_prefill(TINY, q, k, v, mult, shift, tile, kb, causal=False)
    want = np.stack([attention_head_int(qh, k, v, mult, shift, None, cfg) for qh in q])
    np.testing.assert_array_equal(run.output, want)
    assert np.abs(want).max() > 0


def test_non_causal_on_the_fused_architecture():
    """2 query heads of d 32, 40 queries over 300 keys (not a multiple of the block), the
    default tile; a causal run of the same codes differs."""
    rng = np.random.default_rng(5)
    q = rng.integers(-128, 128, (2, 40, 32))
    k, v = (rng.integers(-128, 128, (300, 32)) for _ in range(2))
    cfg = attention_config(FUSED)
    mult, shift = logit_multiplier(1 / 64, 1 / 64, 32, cfg)
    run = run_long_prefill(FUSED, q, k, v, mult, shift, causal=False)
    want = np.stack([attention_head_int(qh, k, v, mult, shift, None, cfg) for qh in q])
    np.testing.assert_array_equal(run.output, want)
    tile = default_tile(FUSED, 2, 32, 32)
    assert 300 % largest_block(FUSED, 2, 32, 32, c=tile) and tile < 40
    causal = run_long_prefill(FUSED, q, k, v, mult, shift)
    assert not np.array_equal(causal.output, run.output)


def test_non_causal_tiles_and_their_checks():
    """A non-causal tile may hold more queries than keys or a block; the query tiles of a
    chunk see all keys (non-causal) or the keys up to their last query (causal)."""
    tile = LongAttention(2, 6, 3, 4, 4, 1, 0, 4, 6, causal=False)
    assert len(long_attention_program(TINY, tile)) > 0
    with pytest.raises(ValueError, match="causal must be a bool"):
        LongAttention(2, 1, 3, 4, 4, 1, 0, 4, causal=1)
    with pytest.raises(ValueError, match=r"expected \(G, C, D\), \(N, D\)"):
        run_long_prefill(TINY, np.zeros((2, 5, 4)), np.zeros((3, 3)), np.zeros((3, 4)), 1, 0,
                         causal=False)
    assert [(t.c, t.keys) for t in query_tiles(2, 7, 20, 4, 4, 1, 0, 3, 8)] == \
        [(3, 16), (3, 19), (1, 20)]
    assert {t.keys for t in query_tiles(2, 7, 20, 4, 4, 1, 0, 3, 8, causal=False)} == {20}
