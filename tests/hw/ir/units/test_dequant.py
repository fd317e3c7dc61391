"""The group-dequantization unit's graph, streamed as the unit streams it, is bit-exact against
golden.group_dequant (scale-product encoding, aligned accumulation, the float32 rounding)."""

import numpy as np
import pytest

from golden.group_dequant import GroupDequantSpec, accumulate_groups, encode_scale_products
from hw.ir.graph_sim import simulate_graph
from hw.ir.units.dequant import DequantShape, dequant_graph


def _bits(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, np.float32).view(np.uint32).astype(np.int64)


def _stream(shape: DequantShape, dots, sx, sw, offsets=None, zero_dead=None):
    """Run every row m through the graph (pass 1, pass 2 over the groups, one cycle to read):
    per (m, n) the graph's (mant, exp) per group, acc and y. ``offsets`` (M, G) and
    ``zero_dead`` (G,) per term, 0 by default."""
    m_rows, n, g = dots.shape
    offsets = np.zeros((m_rows, g), np.int64) if offsets is None else offsets
    zero_dead = np.zeros(g, np.int64) if zero_dead is None else zero_dead
    rows = []
    for m in range(m_rows):
        for p in (1, 2):
            for grp in range(g):
                row = {"first": int(p == 1 and grp == 0), "acc_first": int(p == 2 and grp == 0),
                       "acc_en": int(p == 2), "offset": int(offsets[m, grp]),
                       "zero_dead": int(zero_dead[grp])}
                for lane in range(n):
                    row |= {f"sx{lane}": int(_bits(sx[m, grp])), f"sw{lane}": int(_bits(sw[lane,
                            grp])), f"dot{lane}": int(dots[m, lane, grp])}
                rows.append(row)
    rows.append({**rows[0], "first": 0, "acc_en": 0})      # reads the last row's result
    out = simulate_graph(dequant_graph(shape), rows)
    return rows, out


def _check(spec: GroupDequantSpec, dots, sx, sw):
    m_rows, n, g = dots.shape
    shape = DequantShape(lanes=n, spec=spec)
    _, out = _stream(shape, dots, sx, sw)
    mant, exp = encode_scale_products(sx, sw, spec)
    acc, lsb = accumulate_groups(dots, mant, exp, spec)
    want_y = np.ldexp(acc.astype(np.float64), lsb).astype(np.float32)
    for m in range(m_rows):
        done = out[2 * g * (m + 1)]
        for lane in range(n):
            for grp in range(g):
                cyc = out[2 * g * m + grp]
                assert cyc[f"mant{lane}"] == mant[m, lane, grp]
                got_e = cyc[f"exp{lane}"] - ((cyc[f"exp{lane}"] >> 11) << 12)
                assert got_e == exp[m, lane, grp], (m, lane, grp)
            got_acc = done[f"acc{lane}"] - ((done[f"acc{lane}"] >> (spec.acc_bits - 1))
                                            << spec.acc_bits)
            assert got_acc == acc[m, lane], (m, lane)
            assert done[f"y{lane}"] == int(_bits(want_y[m, lane])), (m, lane)


def _scales(rng, shape, zero_frac=0.1):
    mag = rng.uniform(0.5, 1.0, shape) * np.exp2(rng.integers(-30, 10, shape))
    mag[rng.random(shape) < zero_frac] = 0.0
    return mag.astype(np.float32)


@pytest.mark.parametrize("seed", range(4))
def test_random_layers_bit_exact(seed):
    rng = np.random.default_rng(seed)
    spec = GroupDequantSpec()
    m, n, g = 3, 3, 5
    lim = 1 << (spec.dot_bits - 1)
    dots = rng.integers(-lim, lim, (m, n, g))
    _check(spec, dots, _scales(rng, (m, g)), _scales(rng, (n, g)))


def test_extremes_bit_exact():
    """Extreme dots (int4 -8 x -8 x 64 = 4096 and the range ends), all-zero groups, zero and
    subnormal scales, a huge exponent spread (shifts past the term width), narrow widths."""
    spec = GroupDequantSpec(mant_bits=8, dot_bits=14, guard_bits=1, acc_bits=30)
    lim = 1 << (spec.dot_bits - 1)
    dots = np.array([[[4096, -lim, lim - 1, 0], [0, 0, 0, 0]],
                     [[-1, 1, -lim, 7], [lim - 1, lim - 1, lim - 1, lim - 1]]])
    sub = np.float32(1e-42)                 # a float32 subnormal
    sx = np.array([[1.0, 2.0**-40, 3.0, 0.0], [sub, 1.5, 2.0**20, 0.75]], np.float32)
    sw = np.array([[0.0, 0.0, 0.0, 0.0], [0.1, 2.0**60, sub, 1.0]], np.float32)
    _check(spec, dots, sx, sw)


def test_low_rank_term_with_row_offsets_and_dead_zero_dots():
    """SVDQuant's extra term as golden.svdquant_fixed adds it: the row's shift s_m added to the
    scale product's exponent, and a zero low-rank dot dead (it must not move the exponent)."""
    rng = np.random.default_rng(8)
    spec = GroupDequantSpec(dot_bits=22)
    m, n, g = 3, 3, 4
    dots = rng.integers(-7000, 7000, (m, n, g + 1))
    dots[..., g] = rng.integers(-(1 << 20), 1 << 20, (m, n))
    dots[0, 1, g] = 0                                   # a dead low-rank term
    sx, sw = _scales(rng, (m, g + 1), 0.0), _scales(rng, (n, g + 1), 0.0)
    sx[:2, g] = 2.0 ** 30                               # the branch would dominate E
    shifts = np.array([0, 5, 13])
    offsets = np.zeros((m, g + 1), np.int64)
    offsets[:, g] = shifts
    flags = np.array([0] * g + [1])
    _, out = _stream(DequantShape(lanes=n, spec=spec), dots, sx, sw, offsets, flags)
    mant, exp = encode_scale_products(sx, sw, spec)
    live = dots[..., g] != 0
    mant[..., g] = np.where(live, mant[..., g], 0)
    exp[..., g] = np.where(live, exp[..., g] + shifts[:, None], 0)
    acc, lsb = accumulate_groups(dots, mant, exp, spec)
    want = np.ldexp(acc.astype(np.float64), lsb).astype(np.float32)
    for row in range(m):
        done = out[2 * (g + 1) * (row + 1)]
        assert [done[f"y{lane}"] for lane in range(n)] == [
            int(v) for v in _bits(want[row])], row


def _external(shape: DequantShape, rows: list[dict], g: int) -> list[dict]:
    """The register graph's stream (``_stream``'s rows) through the external-state graph,
    its state carried here as the unit's memory carries it: restarted per output row,
    ``emax`` from the exponent pass, ``acc`` from the term pass."""
    graph = dequant_graph(DequantShape(shape.lanes, shape.spec, external_state=True))
    least, lanes = -(1 << 11), shape.lanes
    state = {}
    outs = []
    for n, row in enumerate(rows):
        if n % (2 * g) == 0:
            state = {f"emax_in{lane}": least for lane in range(lanes)} | \
                {f"acc_in{lane}": 0 for lane in range(lanes)}
        feed = {k: v for k, v in row.items() if k not in ("first", "acc_first")} | state
        out = simulate_graph(graph, [feed])[0]
        outs.append(out)
        for lane in range(lanes):
            key = "emax" if not row["acc_en"] else "acc"
            mask = (1 << (shape.spec.acc_bits if key == "acc" else 12)) - 1
            value = out[f"{key}_next{lane}"] & mask
            top = shape.spec.acc_bits if key == "acc" else 12
            state[f"{key}_in{lane}"] = value - ((value >> (top - 1)) << top)
    return outs


def test_external_state_graph_equals_the_registers():
    """The same terms through the external-state graph (state carried outside, as the
    accelerator's state memory carries it) give every output the register graph gives."""
    rng = np.random.default_rng(21)
    spec = GroupDequantSpec(dot_bits=22)
    m, n, g = 2, 3, 4
    dots = rng.integers(-7000, 7000, (m, n, g))
    dots[0, 1] = 0                                      # an output without a live term
    sx, sw = _scales(rng, (m, g)), _scales(rng, (n, g))
    shape = DequantShape(lanes=n, spec=spec)
    flags = np.array([0, 1, 0, 1])
    offsets = rng.integers(0, 9, (m, g))
    rows, regs = _stream(shape, dots, sx, sw, offsets, flags)
    ext = _external(shape, rows[:-1], g)
    for row in range(m):
        last = 2 * g * (row + 1) - 1            # the row's last term pass
        done = regs[last + 1]                   # registers: the state after it
        for lane in range(n):
            assert ext[last][f"mant{lane}"] == regs[last][f"mant{lane}"]
            assert ext[last][f"acc_next{lane}"] % (1 << spec.acc_bits) == \
                done[f"acc{lane}"] % (1 << spec.acc_bits), (row, lane)
            assert ext[last][f"emax_next{lane}"] % 4096 == done[f"emax{lane}"] % 4096
