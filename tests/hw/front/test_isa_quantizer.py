"""The quantizer's unit commands on the reference machine: ``groups`` against
golden.svdquant_ops.quantize_int4 (signed, unsigned, scales placed from a ``count`` offset,
K-chunks placing global groups), ``rows`` against golden.svdquant_fixed.quantize_symmetric,
what is left unchanged, the out-of-contract inputs, the checks and the cycle count."""

import numpy as np
import pytest

from golden.svdquant_fixed import quantize_symmetric
from golden.svdquant_ops import quantize_int4
from hw.front.accel_params import accel_params
from hw.front.accel_timing import accel_timing
from hw.front.arch import arch_from_dict
from hw.front.isa import ProgramError, assemble
from hw.front.isa_machine import Machine
from tests.hw.accel_cases import tiny_arch, tiny_arch_dict

ARCH = tiny_arch("units")           # Ea = Es = 4; quantizer group 16; 64 accumulator rows
EA = ES = 4
TINY = 2.0**-149


def _values(rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    """float32 (rows, cols): random magnitudes per 4 elements; elements 0..15 (group 0)
    subnormal, -10 subnormal LSBs first (signed scale: 1 LSB, code -8); 16..31 of row 0 zero;
    -0.0 here and there."""
    x = rng.standard_normal((rows, cols)) * np.exp2(rng.integers(-40, 40, (rows, cols // 4, 1))
                                                    ).repeat(4, axis=2).reshape(rows, cols)
    x[:, :16] = rng.integers(-9, 10, (rows, min(cols, 16))) * TINY
    x[:, 0] = -10 * TINY
    x[0, 16:32] = 0.0
    x[rng.random(x.shape) < 0.05] = -0.0
    return x.astype(np.float32)


def _machine(x: np.ndarray, src: int, sentinel_rows: slice) -> Machine:
    """A machine with ``x`` laid out from accumulator row ``src`` (element j of row i at
    ``src + (j // Ea) rows + i``) and random bits in the rows ``sentinel_rows``."""
    m = Machine(ARCH, 64)
    rows, cols = x.shape
    bits = x.view(np.int32).astype(np.int64)
    j, i = np.arange(cols), np.arange(rows)[:, None]
    m.accumulator[src + (j // EA)[None, :] * rows + i, (j % EA)[None, :]] = bits
    rng = np.random.default_rng(9)
    m.accumulator[sentinel_rows] = rng.integers(-(1 << 31), 1 << 31,
                                                m.accumulator[sentinel_rows].shape)
    return m


def _codes(m: Machine, dst: int, rows: int, cols: int) -> np.ndarray:
    j, i = np.arange(cols), np.arange(rows)[:, None]
    return m.scratchpad[dst + (j // ES)[None, :] * rows + i, (j % ES)[None, :]]


def _f32(bits: np.ndarray) -> np.ndarray:
    return np.asarray(bits, np.int64).astype(np.int32).view(np.float32)


@pytest.mark.parametrize("signed", [True, False])
def test_groups_follow_golden(signed):
    """3 rows of 3 groups, the first scale at element 2: scales of groups 0, 1 in scale row
    r (elements 2, 3), group 2's in row 3 + r (element 0); everything else there unchanged."""
    x = _values(np.random.default_rng(int(signed)), 3, 48)
    m = _machine(x, 0, slice(40, 46))
    before = m.accumulator[40:46].copy()
    m.run(assemble(f"unit unit=quantizer mode=groups src=0 dst=10 rows=3 cols=48 arg=40 "
                   f"count=2 shift={int(signed)}", ARCH))
    q, s = quantize_int4(x if signed else np.abs(x), 16, signed, "float32")
    if not signed:
        q = np.where(x < 0, 0, q)               # the hardware's out-of-contract answer
        assert (x < 0).any()
    np.testing.assert_array_equal(_codes(m, 10, 3, 48), q)
    got = m.accumulator[40:46]
    assert _f32(got[0:3, 2:4]).tobytes() == s[:, :2].tobytes()
    assert _f32(got[3:6, 0]).tobytes() == s[:, 2].tobytes()
    np.testing.assert_array_equal(got[0:3, :2], before[0:3, :2])
    np.testing.assert_array_equal(got[3:6, 1:], before[3:6, 1:])
    assert s[0, 1] == 1.0 and (s[:, 0] < 2.0**-126).all()   # a zero group, subnormal scales
    assert q.min() == (-8 if signed else 0) and q.max() == (7 if signed else 15)


def test_chunks_place_their_scales_as_one_command():
    """A row of 5 groups quantized one K-chunk (group) at a time, count = G mod Ea and
    arg = base + (G // Ea) rows, leaves what one command over the whole row leaves."""
    x = _values(np.random.default_rng(3), 2, 80)
    whole = _machine(x, 0, slice(44, 48))
    whole.run(assemble("unit unit=quantizer mode=groups src=0 dst=0 rows=2 cols=80 arg=44 "
                       "count=0 shift=1", ARCH))
    chunks = _machine(x, 0, slice(44, 48))
    text = [f"unit unit=quantizer mode=groups src={8 * g} dst={8 * g} rows=2 cols=16 "
            f"arg={44 + 2 * (g // EA)} count={g % EA} shift=1" for g in range(5)]
    chunks.run(assemble("\n".join(text), ARCH))
    np.testing.assert_array_equal(chunks.accumulator, whole.accumulator)
    np.testing.assert_array_equal(chunks.scratchpad, whole.scratchpad)


@pytest.mark.parametrize("rows,cols", [(3, 10), (1, 1), (2, 24)])
def test_rows_follow_golden(rows, cols):
    x = _values(np.random.default_rng(cols), rows, 24)[:, :cols].copy()
    x[0] = np.clip(x[0] * 15, -150 * TINY, 150 * TINY)
    x[0, 0] = -190 * TINY                       # scale: 1 subnormal LSB, code -128
    if cols > 1:
        x[-1] = 0.0                              # an all-zero row: scale 1.0
    m = _machine(x, 0, slice(50, 50 + rows))
    before = m.accumulator[50:50 + rows].copy()
    m.run(assemble(f"unit unit=quantizer mode=rows src=0 dst=20 rows={rows} cols={cols} "
                   "arg=50", ARCH))
    q, s = quantize_symmetric(x, 8)
    np.testing.assert_array_equal(_codes(m, 20, rows, cols), q)
    assert _f32(m.accumulator[50:50 + rows, 0]).tobytes() == s.tobytes()
    np.testing.assert_array_equal(m.accumulator[50:50 + rows, 1:], before[:, 1:])
    assert q[0, 0] == -128
    if cols > 1:
        assert s[-1] == 1.0


def test_nonfinite_inputs_are_refused():
    for bad in (np.inf, -np.inf, np.nan):
        x = np.ones((1, 16), np.float32)
        x[0, 5] = bad
        m = _machine(x, 0, slice(60, 61))
        with pytest.raises(ProgramError, match=r"instruction 1 .*x of row 0, element 5 is "
                                               r"-?(inf|nan)"):
            m.run(assemble("unit unit=quantizer mode=groups rows=1 cols=16 arg=60 count=0 "
                           "shift=1", ARCH))


@pytest.mark.parametrize("line,message", [
    ("unit unit=quantizer mode=groups rows=1 cols=8 arg=60", r"cols=8 is not a multiple of "
                                                             r"the quantizer's group of 16"),
    ("unit unit=quantizer mode=groups rows=1 cols=16 arg=60 count=4", "count=4 names element 4"),
    ("unit unit=quantizer mode=groups rows=1 cols=16 arg=60 shift=3", "shift=3: quantizer "
                                                                      "groups takes bit 0"),
    ("unit unit=quantizer mode=groups src=60 rows=2 cols=16 arg=0", "src=60 rows=8 reaches "
                                                                    "row 67"),
    ("unit unit=quantizer mode=rows dst=250 rows=2 cols=16 arg=60", "dst=250 rows=8 reaches "
                                                                    "row 257"),
    ("unit unit=quantizer mode=groups rows=2 cols=48 arg=62 count=3", "arg=62 rows=4 reaches"),
    ("unit unit=quantizer mode=groups src=0 rows=2 cols=32 arg=7", r"scale rows arg=7..8 "
                                                                    r"overlap the rows src=0..15"),
    ("unit unit=quantizer mode=rows src=4 rows=2 cols=5 arg=3", r"arg=3..4 overlap the rows "
                                                                r"src=4..7"),
])
def test_bad_quantizer_commands_are_rejected(line, message):
    with pytest.raises(ProgramError, match=message):
        assemble(line, ARCH)


def test_types_the_quantizer_needs():
    def arch(variant: str, **quantizer):
        d = tiny_arch_dict(variant)
        d["units"] = {"quantizer": {"lanes": 4, "group": 16, **quantizer}}
        return arch_from_dict(d)

    with pytest.raises(ProgramError, match=r"the C type is int16 \(16 bits\), it needs 32"):
        assemble("unit unit=quantizer mode=rows rows=1 cols=4 arg=9", arch("int4"))
    uint8 = arch("uint8")
    with pytest.raises(ProgramError, match="the A type is uint8, it needs a signed type"):
        assemble("unit unit=quantizer mode=rows rows=1 cols=4 arg=9", uint8)
    with pytest.raises(ProgramError, match="the A type is uint8, it needs a signed type"):
        assemble("unit unit=quantizer mode=groups rows=1 cols=16 arg=9 count=0 shift=1", uint8)
    assemble("unit unit=quantizer mode=groups rows=1 cols=16 arg=9 count=0", uint8)
    wide_rows = tiny_arch_dict("int8")           # accumulator rows of 8 elements, group 12
    wide_rows["accumulator"]["row_bytes"] = 32
    wide_rows["units"] = {"quantizer": {"lanes": 4, "group": 12}}
    with pytest.raises(ProgramError, match=r"units.quantizer.group = 12 to be a multiple of "
                                           r"an accumulator row's 8 elements"):
        assemble("unit unit=quantizer mode=groups rows=1 cols=12 arg=9 count=0",
                 arch_from_dict(wide_rows))


def test_cycles_are_two_passes_over_the_blocks():
    p = accel_params(ARCH)
    assert p.unit_steps("quantizer", "groups", 3, 48) == 3 * 2 * 12
    assert p.unit_steps("quantizer", "rows", 3, 10) == 3 * 2 * 3
    one = assemble("unit unit=quantizer mode=rows rows=2 cols=9 arg=20", ARCH)
    assert accel_timing(one, p).cycles == 1 + 3 + 2 * 2 * 3
