"""A DuoAttention KV head serving a generation (HeadSession): codes arriving a chunk at a
time, the cache kept in the scratchpad (streaming) or DRAM (retrieval) across programs.
Outputs bit-exact against golden.attention_cache_fixed for random chunk sequences (prefill
chunks, decodes, chunks larger than the largest that fits), the cache read back equal to
golden's (codes and positions), the whole life replayed from ``dram_in`` ending in the same
DRAM, and clear errors."""

import numpy as np
import pytest

from golden.attention_cache_fixed import FullCacheFixed, StreamingCacheFixed
from golden.attention_fixed import logit_multiplier
from hw.front.arch import load_arch
from hw.front.isa_machine import Machine
from hw.front.kernel_duo import attention_config
from hw.front.kernel_duo_session import HeadSession
from hw.front.spec_model import SpecError

FUSED = load_arch("examples/arch/lego_fused.yaml")
GEMMINI = load_arch("examples/arch/gemmini_like.yaml")


def _session(window, g, d, dv, capacity, seed=0):
    cfg = attention_config(FUSED)
    mult, shift = logit_multiplier(0.02, 0.03, d, cfg)
    head = HeadSession(FUSED, g, capacity, d, dv, mult, shift, window)
    gold = (StreamingCacheFixed(d, *window, mult, shift, cfg, dv) if window
            else FullCacheFixed(d, mult, shift, cfg, dv))
    return head, gold, np.random.default_rng(seed)


def _drive(head, gold, rng, chunks):
    for c in chunks:
        q = rng.integers(-127, 128, (head.g, c, head.d))
        k, v = rng.integers(-127, 128, (c, head.d)), rng.integers(-127, 128, (c, head.dv))
        np.testing.assert_array_equal(head.step(q, k, v), gold.step(q, k, v),
                                      err_msg=f"chunk of {c} after {head.length - c}")


def _replayed(head) -> np.ndarray:
    machine = Machine(FUSED, len(head.dram_in))
    machine.dram[:] = np.frombuffer(bytes(head.dram_in), np.uint8)
    for program in head.programs:
        machine.run(program)
    return machine.dram


CASES = [((4, 8), 2, 16, 16, [8, 8, 8, 1, 1, 1]),      # prefill past the ring, then decode
         ((2, 4), 1, 16, 32, [1] * 9),                  # decode only, the ring wraps twice
         ((0, 6), 4, 32, 16, [5, 7, 1]),                # no sink
         ((4, 8), 2, 16, 16, [3]),                      # shorter than sink + recent
         (None, 2, 16, 16, [8, 8, 8, 1, 1, 1]),
         (None, 1, 32, 16, [1, 1, 5, 1]),
         (None, 4, 16, 16, [16, 2])]


@pytest.mark.parametrize("window, g, d, dv, chunks", CASES)
def test_outputs_cache_and_replay_match_golden(window, g, d, dv, chunks):
    head, gold, rng = _session(window, g, d, dv, sum(chunks) + 3)
    _drive(head, gold, rng, chunks)
    positions, k, v = head.cache()
    if window:
        np.testing.assert_array_equal(positions, gold.positions)
    else:
        np.testing.assert_array_equal(positions, np.arange(sum(chunks)))
    np.testing.assert_array_equal(k, gold.k)
    np.testing.assert_array_equal(v, gold.v)
    np.testing.assert_array_equal(_replayed(head), head.machine.dram)
    assert len(head.programs) == len(chunks) + (window is not None)     # + the reset


@pytest.mark.parametrize("seed", range(6))
def test_random_chunk_sequences(seed):
    rng = np.random.default_rng(100 + seed)
    window = None if seed % 3 == 0 else (int(rng.integers(0, 5)), int(rng.integers(1, 9)))
    chunks = [int(c) for c in rng.integers(1, 12, int(rng.integers(1, 6)))]
    head, gold, rng = _session(window, int(rng.integers(1, 4)), 16, 16, sum(chunks), seed)
    _drive(head, gold, rng, chunks)
    np.testing.assert_array_equal(head.cache()[1], gold.k)
    np.testing.assert_array_equal(_replayed(head), head.machine.dram)


def test_a_chunk_larger_than_fits_runs_as_several_steps():
    """A streaming chunk beyond the largest that fits is split, still bit-exact."""
    from hw.front.kernel_duo import DuoHead

    most = DuoHead.largest_chunk(FUSED, 8, 4096, 64, 64, (4, 8), limit=4095)
    head, gold, rng = _session((4, 8), 8, 64, 64, most + 9)
    _drive(head, gold, rng, [most + 5, 1])
    assert sum(ins.op == "config" for ins in head.programs[1]) == 2     # two steps


def test_bad_inputs_are_named():
    head, _, rng = _session((4, 8), 2, 16, 16, 4)
    with pytest.raises(ValueError, match="expected"):
        head.step(np.zeros((2, 2, 16)), np.zeros((3, 16)), np.zeros((3, 16)))
    with pytest.raises(ValueError, match="capacity of 4"):
        head.step(np.zeros((2, 5, 16)), np.zeros((5, 16)), np.zeros((5, 16)))
    with pytest.raises(ValueError, match="capacity must be a positive int"):
        HeadSession(FUSED, 2, 0, 16, 16, 1, 0)
    assert head.length == 0 and len(head.programs) == 1                 # unchanged


def test_an_architecture_without_the_units_is_refused():
    with pytest.raises(SpecError, match="no requant unit"):
        HeadSession(GEMMINI, 1, 8, 16, 16, 1, 0)
    with pytest.raises(SpecError, match="requant"):
        HeadSession(GEMMINI, 1, 8, 16, 16, 1, 0, (2, 4))
