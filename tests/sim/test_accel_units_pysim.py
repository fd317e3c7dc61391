"""The generated accelerator's workload units in Amaranth's simulator: programs with the unit
commands (requant absmax / operand / wide / slices, normalizer divide) and ReLU'd moves
compute what the reference machine computes (bit-exact DRAM) in the cycles the model predicts;
whole linear-attention heads, SVDQuant layers and DuoAttention heads (streaming and retrieval,
prefill and decode) equal the reference machine's and golden's outputs, extremes included."""

import random

import numpy as np
import pytest

from golden.linear_attention_chain import linear_attention_chain_int
from hw.front.accel_params import accel_params
from hw.front.accel_timing import accel_timing
from hw.front.isa import ProgramError, encode
from hw.front.isa_machine import Machine
from hw.front.kernel_attention import run_linear_attention
from sim.accel_pysim import run_accel_pysim
from tests.hw.accel_cases import DRAM_BYTES, random_unit_program, tiny_arch

ARCH = tiny_arch("units")


def _reference(program, dram: bytes) -> bytes:
    machine = Machine(ARCH, len(dram))
    machine.write_dram(0, dram)
    machine.run(program)
    return machine.dram.tobytes()


def _program(seed: int):
    """A random unit program the reference machine accepts, with its DRAM (draws again while
    a normalizer's numerator leaves its input range)."""
    rnd = random.Random(seed)
    while True:
        program = random_unit_program(ARCH, rnd, 60)
        dram = bytes(rnd.randrange(256) for _ in range(DRAM_BYTES))
        try:
            return program, dram, _reference(program, dram)
        except ProgramError:
            continue


@pytest.mark.parametrize("seed", range(8))
def test_random_unit_programs_bit_exact_and_cycle_exact(seed):
    program, dram, expected = _program(seed)
    run = run_accel_pysim(ARCH, [encode(i) for i in program], dram, max_cycles=50_000)
    assert run.dram == expected
    assert run.cycles == accel_timing(program, accel_params(ARCH)).cycles


@pytest.mark.parametrize("seed", range(4))
def test_the_random_programs_see_the_units(seed):
    """The comparison above could fail: without the unit commands, or without the ReLU of
    the moves, the programs leave a different DRAM."""
    program, dram, expected = _program(seed)
    for drop in (lambda i: i.op == "unit", lambda i: i.op == "mvin" and i["relu"]):
        assert _reference([i for i in program if not drop(i)], dram) != expected


def _head(q, k, v):
    run = run_linear_attention(ARCH, q, k, v)
    rtl = run_accel_pysim(ARCH, [encode(i) for i in run.program], run.dram_in,
                          max_cycles=100_000)
    assert rtl.dram == run.machine.dram.tobytes()
    assert rtl.cycles == accel_timing(run.program, accel_params(ARCH)).cycles
    nrm = ARCH.units.normalizer
    want = linear_attention_chain_int(q, k, v, nrm.out_frac_bits, nrm.den_bits,
                                      nrm.recip_frac_bits).out
    np.testing.assert_array_equal(run.output, want)
    return run.output


@pytest.mark.parametrize("n,d,dv,seed", [(6, 4, 3, 0), (9, 5, 6, 1), (17, 3, 4, 2),
                                         (1, 4, 4, 4)])
def test_linear_attention_heads_on_the_rtl(n, d, dv, seed):
    rng = np.random.default_rng(seed)
    q, k, v = (rng.integers(-128, 128, s) for s in ((n, d), (n, d), (n, dv)))
    assert np.any(_head(q, k, v) != 0)


def test_linear_attention_extremes_on_the_rtl():
    """All-negative keys (ReLU'd to zero: every denominator 0, golden's output 0), codes at
    -128 and 127 (the requantizer's saturation), and a query that is all negative."""
    n, d, dv = 7, 4, 4
    rng = np.random.default_rng(9)
    v = rng.integers(-128, 128, (n, dv))
    q = rng.integers(-128, 128, (n, d))
    assert np.all(_head(q, -rng.integers(1, 129, (n, d)), v) == 0)
    k = np.where(rng.random((n, d)) < 0.5, 127, -128)
    q[2] = -5
    out = _head(np.full((n, d), 127), k, np.where(rng.random((n, dv)) < 0.5, 127, -128))
    assert np.any(out != 0)
    _head(q, k, v)


def _svdquant(m, k, n, r, rng, extremes=False):
    """Operands of an SVDQuant layer on the tiny architecture (group 16): int4 codes, float32
    scales, the int8 branch; with ``extremes`` codes at -8, a group of zero scales, an output
    whose low-rank dots are all 0 (dead) and a row of zero branch codes."""
    from golden.svdquant_fixed import SVDQuantFixedSpec, svdquant_fixed_int

    g = k // 16
    qx, qw = rng.integers(-8, 8, (m, k)), rng.integers(-8, 8, (n, k))
    sx, sw = (rng.uniform(0.01, 0.2, s).astype(np.float32) for s in ((m, g), (n, g)))
    xl, l1q, l2q = (rng.integers(-128, 128, s) for s in ((m, k), (k, r), (r, n)))
    sxl, sl2 = (rng.uniform(1e-3, 1e-2, s).astype(np.float32) for s in (m, n))
    if extremes:
        qx[0], qw[:, :16] = -8, -8
        sx[:, g - 1] = 0.0
        l2q[:, 1] = 0
        xl[1] = 0
    ops = (qx, sx, qw, sw, xl, sxl, l1q, l2q, sl2)
    spec = SVDQuantFixedSpec(group_size=16, branch_bits=8,
                             dequant=ARCH.units.dequant.golden_spec())
    return ops, np.asarray(svdquant_fixed_int(*ops, spec).y, np.float32)


@pytest.mark.parametrize("m,k,n,r,extremes", [(6, 32, 5, 4, False), (7, 32, 4, 4, True),
                                               (3, 16, 9, 2, False)])
def test_svdquant_layers_on_the_rtl(m, k, n, r, extremes):
    """The whole layer (requant rows, the dequantizer's passes, scales moved in with acc=1)
    on the RTL: the reference machine's DRAM, golden's float32 bits; more rows than the
    dequantizer holds (4) in blocks."""
    from hw.front.kernel_svdquant import run_svdquant_linear

    ops, want = _svdquant(m, k, n, r, np.random.default_rng(m + k), extremes)
    run = run_svdquant_linear(ARCH, *ops)
    np.testing.assert_array_equal(run.output.view(np.int32), want.view(np.int32))
    rtl = run_accel_pysim(ARCH, [encode(i) for i in run.program], run.dram_in,
                          max_cycles=200_000)
    assert rtl.dram == run.machine.dram.tobytes()
    assert rtl.cycles == accel_timing(run.program, accel_params(ARCH)).cycles


@pytest.mark.parametrize("window,t,chunk,decode", [
    ((2, 3), 14, 4, 3),         # the ring wraps during the prefill and the decode
    ((2, 3), 5, 2, 1),          # the sequence ends exactly at sink + recent
    ((3, 6), 7, 3, 2),          # shorter than sink + recent: the ring never wraps
    (None, 11, 4, 2),           # retrieval: a linear cache
])
def test_duo_heads_on_the_rtl(window, t, chunk, decode):
    """A DuoAttention KV head with two query heads (GQA): reset, chunked prefill and decode
    steps as one program on the RTL, the KV cache kept in the scratchpad between steps; the
    reference machine's DRAM (its outputs golden's) in the modelled cycles."""
    from golden.attention_cache_fixed import FullCacheFixed, StreamingCacheFixed
    from golden.attention_fixed import logit_multiplier
    from hw.front.kernel_duo import DuoHead, attention_config

    rng = np.random.default_rng(t)
    g, d = 2, 4
    q, k, v = rng.integers(-128, 128, (g, t, d)), *(rng.integers(-128, 128, (t, d))
                                                  for _ in range(2))
    cfg = attention_config(ARCH)
    mult, shift = logit_multiplier(1 / 64, 1 / 64, d, cfg)
    head = DuoHead(ARCH, q, k, v, mult, shift, *(window or (None, None)), max_chunk=chunk)
    ref = (StreamingCacheFixed(d, *window, mult, shift, cfg) if window
           else FullCacheFixed(d, mult, shift, cfg))
    dram_in, program = head.machine.dram.tobytes(), list(head.reset_program)
    steps = [min(chunk, t - decode - s) for s in range(0, t - decode, chunk)] + [1] * decode
    for c in steps:
        at = head.length
        np.testing.assert_array_equal(head.step(c), ref.step(q[:, at:at + c], k[at:at + c],
                                                             v[at:at + c]))
        program += head.last_program
    rtl = run_accel_pysim(ARCH, [encode(i) for i in program], dram_in, max_cycles=400_000)
    assert rtl.dram == head.machine.dram.tobytes()
    assert rtl.cycles == accel_timing(program, accel_params(ARCH)).cycles


def test_nvfp4_gemm_on_the_rtl():
    """NVFP4 (E2M1 codes, E4M3 scales per 16 elements) on the same dequantizer: the plain
    (rank 0) SVDQuant kernel with golden's NVFP4 operands (codes x2 as int8, group 16) gives
    golden.group_dequant.nvfp4_dequant_gemm's float32 bits, on the RTL too."""
    from golden.group_dequant import nvfp4_dequant_gemm, nvfp4_group_operands
    from golden.nvfp4 import quantize_nvfp4
    from hw.front.kernel_svdquant import run_svdquant_linear

    rng = np.random.default_rng(16)
    m, k, n = 5, 48, 6
    a = quantize_nvfp4(rng.standard_normal((m, k)).astype(np.float32))
    b = quantize_nvfp4((rng.standard_normal((n, k)) * 0.1).astype(np.float32))
    qa, sa, qb, sb = nvfp4_group_operands(a, b)
    no_branch = (np.zeros((m, k), np.int64), np.zeros(m, np.float32),
                 np.zeros((k, 0), np.int64), np.zeros((0, n), np.int64),
                 np.zeros(n, np.float32))            # xl, sxl, l1q, l2q, sl2 of rank 0
    run = run_svdquant_linear(ARCH, qa.astype(np.int64), sa, qb.astype(np.int64), sb,
                              *no_branch)
    want = nvfp4_dequant_gemm(a, b, ARCH.units.dequant.golden_spec())
    np.testing.assert_array_equal(run.output.view(np.int32), want.view(np.int32))
    rtl = run_accel_pysim(ARCH, [encode(i) for i in run.program], run.dram_in,
                          max_cycles=200_000)
    assert rtl.dram == run.machine.dram.tobytes()
    assert rtl.cycles == accel_timing(run.program, accel_params(ARCH)).cycles


@pytest.mark.parametrize("keys,kb", [(37, 8), (16, 16), (9, 72)])
def test_long_context_retrieval_decode_on_the_rtl(keys, kb):
    """The retrieval head's decode step over key blocks streamed from DRAM (softmax max, then
    scaled): golden's outputs, the reference machine's DRAM, the modelled cycles."""
    from golden.attention_fixed import attention_head_int, logit_multiplier
    from hw.front.kernel_duo import attention_config
    from hw.front.kernel_duo_long import run_long_decode

    rng = np.random.default_rng(keys)
    q, k, v = rng.integers(-128, 128, (2, 4)), *(rng.integers(-128, 128, (keys, 4))
                                                for _ in range(2))
    cfg = attention_config(ARCH)
    mult, shift = logit_multiplier(1 / 64, 1 / 64, 4, cfg)
    run = run_long_decode(ARCH, q, k, v, mult, shift, kb)
    np.testing.assert_array_equal(run.output, attention_head_int(q, k, v, mult, shift, None,
                                                                 cfg))
    rtl = run_accel_pysim(ARCH, [encode(i) for i in run.program], run.dram_in,
                          max_cycles=200_000)
    assert rtl.dram == run.machine.dram.tobytes()
    assert rtl.cycles == accel_timing(run.program, accel_params(ARCH)).cycles


def test_long_context_prefill_on_the_rtl():
    """A prefill chunk of 5 tokens after 6 cached keys in query tiles of 3 (the tiles' own
    keys under the causal softmax): golden's causal outputs, the reference machine's DRAM,
    the modelled cycles."""
    from golden.attention_fixed import attention_head_int, logit_multiplier
    from hw.front.kernel_duo import attention_config
    from hw.front.kernel_duo_long import run_long_prefill

    rng = np.random.default_rng(11)
    q = rng.integers(-128, 128, (2, 5, 4))
    k, v = (rng.integers(-128, 128, (11, 4)) for _ in range(2))
    cfg = attention_config(ARCH)
    mult, shift = logit_multiplier(1 / 64, 1 / 64, 4, cfg)
    run = run_long_prefill(ARCH, q, k, v, mult, shift, tile=3, kb=8)
    mask = np.arange(11)[None, :] <= 6 + np.arange(5)[:, None]
    want = np.stack([attention_head_int(qh, k, v, mult, shift, mask, cfg) for qh in q])
    np.testing.assert_array_equal(run.output, want)
    rtl = run_accel_pysim(ARCH, [encode(i) for i in run.program], run.dram_in,
                          max_cycles=200_000)
    assert rtl.dram == run.machine.dram.tobytes()
    assert rtl.cycles == accel_timing(run.program, accel_params(ARCH)).cycles
