"""The KV-cache address generator's graph against golden.kv_cache: the write slot of every
position is ring_buffer_address's, the oldest ring slot and the held count are what
StreamingKVCache (stepped token by token) reads; retrieval descriptors address linearly;
several descriptors interleave without disturbing each other."""

import numpy as np
import pytest
import torch

from golden.kv_cache import StreamingKVCache, ring_buffer_address
from hw.ir.graph_sim import simulate_graph
from hw.ir.units.kv_address import KvAddressShape, kv_address_graph

SMALL = KvAddressShape(slot_bits=6, pos_bits=10)


def _row(sink, recent, advance=1, reset=0, retrieval=0, **extra):
    return {"sink": sink, "recent": recent, "advance": advance, "reset": reset,
            "retrieval": retrieval, **extra}


def _golden_reads(sink: int, recent: int, steps: int) -> list[tuple[int, int]]:
    """Per length n = 0 .. steps - 1, (first ring slot of slots_in_order, len(held)) of a
    StreamingKVCache that has been stepped n single tokens (sink when no ring entry)."""
    cache = StreamingKVCache(1, 1, 1, sink, recent)
    reads = []
    for _ in range(steps):
        slots, held = cache.slots_in_order(), cache.held_positions()
        assert [ring_buffer_address(p, sink, recent) for p in held] == slots
        ring = slots[min(cache.length, sink):]
        reads.append((ring[0] if ring else sink, len(held)))
        t = torch.zeros(1, 1, 1, 1)
        cache.step(t, t, t)
    return reads


@pytest.mark.parametrize("sink,recent", [(4, 8), (0, 1), (0, 5), (1, 1), (3, 1), (7, 2),
                                         (2, 61), (1, 63), (0, 63), (63, 1)])
def test_streaming_run_matches_golden(sink, recent):
    """Positions 0 .. 3 (sink + recent) + 5 one token per cycle: every wrap, the boundary
    n = sink + recent, sink = 0 and recent = 1 included."""
    steps = 3 * (sink + recent) + 6
    out = simulate_graph(kv_address_graph(SMALL), [_row(sink, recent)] * steps)
    reads = _golden_reads(sink, recent, steps)
    for n, (row, (oldest, held)) in enumerate(zip(out, reads, strict=True)):
        assert row["count"] == n
        assert row["slot"] == ring_buffer_address(n, sink, recent), n
        assert (row["oldest"], row["held"]) == (oldest, held), n


def test_stalls_reset_and_short_sequences():
    """advance = 0 holds the position; reset restarts at 0 in its own cycle (also with
    advance); sequences shorter than sink + recent never wrap."""
    sink, recent = 3, 5
    rng = np.random.default_rng(0)
    rows, want, n = [], [], 0
    for t in range(400):
        reset = int(t % 97 == 0 or rng.random() < 0.02)
        advance = int(rng.random() < 0.7)
        n = 0 if reset else n
        rows.append(_row(sink, recent, advance, reset))
        want.append(n)
        n += advance
    out = simulate_graph(kv_address_graph(SMALL), rows)
    reads = _golden_reads(sink, recent, max(want) + 1)
    for row, n in zip(out, want, strict=True):
        assert row["count"] == n
        assert row["slot"] == ring_buffer_address(n, sink, recent)
        assert (row["oldest"], row["held"]) == reads[n]
    assert max(want) > 3 * (sink + recent)
    short = simulate_graph(kv_address_graph(SMALL), [_row(10, 20)] * 25)
    assert [r["slot"] for r in short] == list(range(25))


def test_retrieval_is_linear():
    rows = [_row(2, 3, retrieval=1)] * 40
    out = simulate_graph(kv_address_graph(SMALL), rows)
    assert [(r["count"], r["slot"], r["held"], r["oldest"]) for r in out] == \
        [(n, n, n, 0) for n in range(40)]


def test_count_saturates():
    shape = KvAddressShape(slot_bits=3, pos_bits=4)
    out = simulate_graph(kv_address_graph(shape), [_row(2, 3)] * 40)
    assert [r["count"] for r in out] == [min(n, 15) for n in range(40)]
    assert [r["slot"] for r in out] == [ring_buffer_address(n, 2, 3) for n in range(40)]


@pytest.mark.parametrize("descriptors", [3, 4])
def test_descriptors_interleave(descriptors):
    """Random interleaving of descriptors, each with its own sink / recent / mode: each one's
    outputs are golden's for its own position; the others hold."""
    shape = KvAddressShape(descriptors=descriptors, slot_bits=6, pos_bits=10)
    configs = [(2, 5, 0), (0, 3, 0), (4, 1, 1), (1, 9, 0)][:descriptors]
    rng = np.random.default_rng(descriptors)
    pos, rows, want = [0] * descriptors, [], []
    for _ in range(600):
        d = int(rng.integers(descriptors))
        sink, recent, retrieval = configs[d]
        advance, reset = int(rng.random() < 0.8), int(rng.random() < 0.01)
        pos[d] = 0 if reset else pos[d]
        rows.append(_row(sink, recent, advance, reset, retrieval, desc=d))
        want.append((d, pos[d]))
        pos[d] += advance
    out = simulate_graph(kv_address_graph(shape), rows)
    top = max(n for _, n in want) + 1
    reads = [[(0, n) for n in range(top)] if r else _golden_reads(s, c, top)
             for s, c, r in configs]
    for row, (d, n) in zip(out, want, strict=True):
        sink, recent, retrieval = configs[d]
        assert row["count"] == n
        assert row["slot"] == (n if retrieval else ring_buffer_address(n, sink, recent))
        assert (row["oldest"], row["held"]) == reads[d][n]


def test_out_of_range_descriptor_is_the_last():
    shape = KvAddressShape(descriptors=3, slot_bits=4, pos_bits=6)
    rows = [_row(1, 4, desc=3)] * 5 + [_row(1, 4, desc=2, advance=0)]
    assert simulate_graph(kv_address_graph(shape), rows)[-1]["count"] == 5


@pytest.mark.parametrize("field,value", [("descriptors", 0), ("slot_bits", 33),
                                         ("pos_bits", True), ("descriptors", 1.0)])
def test_shape_validation(field, value):
    with pytest.raises(ValueError, match=field):
        KvAddressShape(**{field: value})
    with pytest.raises(ValueError, match="pos_bits"):
        KvAddressShape(slot_bits=8, pos_bits=4)
