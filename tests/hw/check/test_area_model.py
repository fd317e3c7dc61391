"""The area laws (:mod:`hw.check.area_model`): prices of generic cells, the fit through three
variants recovering any linear law exactly, estimates at other sizes, clear errors."""

import random

import pytest

from hw.check.area_model import (
    CELL_UM2,
    SRAM_UM2_PER_BIT,
    VARIANTS,
    VariantMeasure,
    cell_area_um2,
    fit_area_model,
)


@pytest.mark.parametrize("cell, cells", [
    ("$_AND_", ("AND2",)), ("$_NOT_", ("INV",)), ("$_MUX_", ("MUX2",)),
    ("$_XOR_", ("XOR2",)), ("$_DFF_P_", ("DFF",)), ("$_DFF_PN0_", ("DFFR",)),
    ("$_DFFE_PP_", ("DFF", "MUX2")), ("$_DFFE_PN0P_", ("DFFR", "MUX2")),
    ("$_SDFF_PP0_", ("DFF", "AND2")), ("$_SDFFE_PP0P_", ("DFF", "AND2", "MUX2")),
    ("$_DFFSR_PPP_", ("DFFRS",)), ("$_DLATCH_P_", ("DLH",)),
])
def test_cell_prices(cell, cells):
    assert cell_area_um2(cell) == pytest.approx(sum(CELL_UM2[c] for c in cells))


@pytest.mark.parametrize("cell", ["$_FOO_", "$and", "$_DFF_PPPPP_", "$_DFFE_P_", ""])
def test_unknown_cells_are_refused(cell):
    with pytest.raises(ValueError, match="no area for the Yosys cell type"):
        cell_area_um2(cell)


def _law(rng):
    return tuple(rng.uniform(0, 1e4) for _ in range(3)), tuple(rng.uniform(0, 50)
                                                               for _ in range(3))


def _variants(laws, rams):
    """Variants measured from exact linear laws: part -> (const, per_array, per_lane)."""
    out = []
    for edge, lanes in VARIANTS:
        parts = {}
        for name, (c, a, n) in laws.items():
            x = edge * edge if name == "exec" else edge
            parts[name] = tuple(c[i] + a[i] * x + n[i] * lanes for i in range(3))
        bits = {k: b0 + b1 * lanes for k, (b0, b1) in rams.items()}
        out.append(VariantMeasure(edge, edge, lanes, parts, bits))
    return tuple(out)


def test_fit_recovers_linear_laws():
    """Any part linear in its array size and lanes is recovered exactly: 300 random laws,
    estimates at random sizes equal the laws."""
    rng = random.Random(7)
    for _ in range(300):
        names = rng.sample(["exec", "dma", "dispatcher", "dequant", "softmax", "shared"], 4)
        laws = {n: (*_law(rng), tuple(rng.uniform(0, 200) for _ in range(3))) for n in names}
        rams = {"dequant_state": (rng.randrange(1, 10**5), rng.randrange(0, 10**4)),
                "scratchpad": (rng.randrange(1, 10**6), 0), "accumulator": (4096, 0)}
        model = fit_area_model(_variants(laws, rams))
        rows, cols = rng.randrange(1, 65), rng.randrange(1, 65)
        lanes = {"dequant": rng.randrange(1, 33), "softmax": rng.randrange(1, 33)}
        est = model.estimate(rows, cols, lanes, {"scratchpad": 8192})
        for name, (c, a, n) in laws.items():
            x = rows * cols if name == "exec" else max(rows, cols)
            ln = lanes.get(name, max(lanes.values()))
            want = [max(0.0, c[i] + a[i] * x + n[i] * ln) for i in range(3)]
            assert est.parts[name] == pytest.approx(want, rel=1e-9, abs=1e-6), name
        b0, b1 = rams["dequant_state"]
        assert est.sram_bits == {"accumulator": 4096, "scratchpad": 8192,
                                 "dequant_state": round(b0 + b1 * lanes["dequant"])}
        assert est.mm2 == pytest.approx(est.logic_mm2 + est.sram_mm2)
        assert est.sram_mm2 == pytest.approx(sum(est.sram_bits.values()) * SRAM_UM2_PER_BIT
                                             / 1e6)


def test_priced_from_parts():
    v = VariantMeasure.from_parts(2, 2, 1, {"exec": {"gates": 3, "flip_flops": 1, "by_type": {
        "$_AND_": 2, "$_DFF_P_": 1}}}, {"scratchpad": {"bits": 64}})
    assert v.parts == {"exec": (3, 1, pytest.approx(2 * 1.064 + 4.522))}
    assert v.memories == {"scratchpad": 64}


def test_bad_variants_and_estimates():
    laws = {"exec": ((1, 1, 1), (1, 1, 1), (0, 0, 0))}
    good = _variants(laws, {"scratchpad": (8, 0)})
    with pytest.raises(ValueError, match="area variants must be"):
        fit_area_model((good[0], good[0], good[2]))
    with pytest.raises(ValueError, match="area variants must be"):
        fit_area_model((good[2], good[1], good[0]))
    model = fit_area_model(good)
    with pytest.raises(ValueError, match="no RAM named"):
        model.estimate(4, 4, {}, {"accumulatr": 8})
    with pytest.raises(ValueError, match="all must be >= 1"):
        model.estimate(0, 4, {}, {})
    with pytest.raises(ValueError, match="all must be >= 1"):
        model.estimate(4, 4, {"dequant": 0}, {})
