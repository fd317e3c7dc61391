"""An accelerator's area from three Yosys measurements of small variants of it: per part a
law linear in its array size and lanes, generic gates priced as 45 nm standard cells, RAMs as
SRAM bits (:func:`fit_area_model`, :meth:`AreaModel.estimate`).

**Laws** (per part of :mod:`hw.check.accel_area`, and per RAM's bits): ``y = c + a X + n L``
with ``X`` the PEs ``rows x cols`` for ``exec`` (the array with its operand, drain and
accumulate logic) and the array edge ``max(rows, cols)`` for every other part (buses, row
widths, the transposer), ``L`` the lanes of the unit a part or RAM is named after (its
copies), else the most lanes of any unit. Three variants (:data:`VARIANTS`) determine
``c, a, n``: a step in the array at 1 lane, then a step in the lanes. Checked against a
whole-design measurement of the declared lego_fused (16x16, 16 lanes; 31 min of Yosys):
``benchmarks/area_model.py``.

**Prices** (:data:`CELL_UM2`, 45 nm, the node of the energy table's Horowitz numbers): a
generic gate costs the X1 cell of the NanGate 45 nm Open Cell Library that implements it
(``$_AND_`` AND2_X1 1.064 um^2, ``$_MUX_`` MUX2_X1 1.862, ``$_DFF_PN0_`` DFFR_X1 5.320, an
enable flip-flop a DFF plus a MUX2, a synchronous reset one plus an AND2, ...). Gates before
``abc`` are counted, so logic is over-estimated by what ``abc`` would merge (it keeps 0.82-0.96
of the units' gates, README). An SRAM bit costs :data:`SRAM_UM2_PER_BIT`: a 45 nm 6T cell of
0.346 um^2 (Intel's 45 nm SRAM, Mistry et al., IEDM 2007) over an assumed array efficiency of
0.7 (periphery, sense amplifiers, decoders); extra ports are not priced. Both are stated
assumptions: figures compare designs with each other, they do not predict a tape-out.

Layer: hw.check (pure Python: no Amaranth, no Yosys; a sweep prices thousands of points).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["CELL_UM2", "SRAM_UM2_PER_BIT", "VARIANTS", "AreaEstimate", "AreaModel", "PartLaw",
           "VariantMeasure", "cell_area_um2", "fit_area_model"]

#: NanGate 45 nm Open Cell Library X1 cell areas (um^2) of the generic gates' equivalents.
CELL_UM2 = {"INV": 0.532, "BUF": 0.798, "NAND2": 0.798, "NOR2": 0.798, "AND2": 1.064,
            "OR2": 1.064, "XOR2": 1.596, "XNOR2": 1.596, "MUX2": 1.862, "AOI21": 1.064,
            "AOI22": 1.330, "DFF": 4.522, "DFFR": 5.320, "DFFRS": 6.118, "DLH": 2.394}
SRAM_UM2_PER_BIT = 0.346 / 0.7
_GATE = {"$_NOT_": "INV", "$_BUF_": "BUF", "$_NAND_": "NAND2", "$_NOR_": "NOR2",
         "$_AND_": "AND2", "$_OR_": "OR2", "$_ANDNOT_": "AND2", "$_ORNOT_": "OR2",
         "$_XOR_": "XOR2", "$_XNOR_": "XNOR2", "$_MUX_": "MUX2", "$_NMUX_": "MUX2",
         "$_AOI3_": "AOI21", "$_OAI3_": "AOI21", "$_AOI4_": "AOI22", "$_OAI4_": "AOI22"}
_FF = re.compile(r"^\$_(DFF|DFFE|SDFF|SDFFE|SDFFCE|DFFSR|DFFSRE|ALDFF|ALDFFE|DLATCH)_"
                 r"([PN01]+)_$")
#: (kind, polarity letters) -> the cells: an async reset (3 letters on DFF) takes DFFR, an
#: enable a MUX2, a synchronous reset an AND2, set and reset both (or a load) DFFRS
_FF_CELLS = {("DFF", 1): ("DFF",), ("DFF", 3): ("DFFR",), ("DFFE", 2): ("DFF", "MUX2"),
             ("DFFE", 4): ("DFFR", "MUX2"), ("SDFF", 3): ("DFF", "AND2"),
             ("SDFFE", 4): ("DFF", "AND2", "MUX2"), ("SDFFCE", 4): ("DFF", "AND2", "MUX2"),
             ("DFFSR", 3): ("DFFRS",), ("DFFSRE", 4): ("DFFRS", "MUX2"),
             ("ALDFF", 2): ("DFFRS",), ("ALDFFE", 3): ("DFFRS", "MUX2"),
             ("DLATCH", 1): ("DLH",), ("DLATCH", 3): ("DLH", "AND2")}
#: the measured variants (rows = cols, lanes): a step in the array, then one in the lanes
VARIANTS = ((2, 1), (4, 1), (4, 2))


def cell_area_um2(cell_type: str) -> float:
    """The price of one generic Yosys cell (module docstring); ``ValueError`` for a type
    this model does not know (never priced as zero)."""
    if cell_type in _GATE:
        return CELL_UM2[_GATE[cell_type]]
    m = _FF.match(cell_type)
    key = (m.group(1), len(m.group(2))) if m else None
    if key not in _FF_CELLS:
        raise ValueError(f"no area for the Yosys cell type {cell_type!r} (known: generic "
                         "gates and flip-flops after techmap)")
    return sum(CELL_UM2[c] for c in _FF_CELLS[key])


@dataclass(frozen=True)
class VariantMeasure:
    """One measured variant: its array and lanes, per part ``(gates, flip_flops, um2)``,
    and per RAM its bits."""

    rows: int
    cols: int
    lanes: int
    parts: dict[str, tuple[int, int, float]]
    memories: dict[str, int]

    @classmethod
    def from_parts(cls, rows: int, cols: int, lanes: int,
                   parts: Mapping[str, Mapping], memories: Mapping[str, Mapping]
                   ) -> VariantMeasure:
        """From :class:`~hw.check.accel_area.AccelParts`' JSON ``parts`` and ``memories``,
        pricing every part's cells (:func:`cell_area_um2`)."""
        priced = {k: (v["gates"], v["flip_flops"],
                      sum(n * cell_area_um2(t) for t, n in v["by_type"].items()))
                  for k, v in parts.items()}
        return cls(rows, cols, lanes, priced, {k: v["bits"] for k, v in memories.items()})


def _array_size(name: str, rows: int, cols: int) -> int:
    """What a part sees of the array: ``exec`` its PEs, everything else one edge."""
    return rows * cols if name == "exec" else max(rows, cols)


@dataclass(frozen=True)
class PartLaw:
    """``y = const + per_array * X + per_lane * L`` for (gates, flip-flops, um^2) or (bits,):
    ``X`` the PEs for ``exec``, else the array edge; ``L`` the lanes."""

    const: tuple[float, ...]
    per_array: tuple[float, ...]
    per_lane: tuple[float, ...]

    def at(self, x: int, lanes: int) -> tuple[float, ...]:
        return tuple(max(0.0, c + a * x + n * lanes) for c, a, n in
                     zip(self.const, self.per_array, self.per_lane, strict=True))


@dataclass(frozen=True)
class AreaEstimate:
    """An architecture's estimated area: per part ``(gates, flip_flops, um2)``, per RAM
    its bits (the scratchpad and accumulator exactly, the others by their laws)."""

    parts: dict[str, tuple[float, ...]]
    sram_bits: dict[str, int]

    @property
    def gates(self) -> int:
        return round(sum(p[0] for p in self.parts.values()))

    @property
    def logic_mm2(self) -> float:
        return sum(p[2] for p in self.parts.values()) / 1e6

    @property
    def sram_mm2(self) -> float:
        return sum(self.sram_bits.values()) * SRAM_UM2_PER_BIT / 1e6

    @property
    def mm2(self) -> float:
        return self.logic_mm2 + self.sram_mm2


@dataclass(frozen=True)
class AreaModel:
    """Per-part and per-RAM laws of one architecture family (everything but the array, the
    lanes and the scratchpad / accumulator capacities)."""

    parts: dict[str, PartLaw]
    memories: dict[str, PartLaw]

    def estimate(self, rows: int, cols: int, lanes: Mapping[str, int],
                 exact_bits: Mapping[str, int]) -> AreaEstimate:
        """The area at ``rows x cols`` with each unit's ``lanes``: a part or RAM named after
        a unit (``dequant``, ``dequant_state``) takes that unit's, any other the most lanes;
        RAMs named in ``exact_bits`` (the scratchpad, the accumulator) take those bits.
        ``ValueError`` for a size below 1 or an unknown RAM."""
        if min(rows, cols, *lanes.values()) < 1:
            raise ValueError(f"area of a {rows}x{cols} array with lanes {dict(lanes)}: all "
                             "must be >= 1")
        unknown = sorted(set(exact_bits) - set(self.memories))
        if unknown:
            raise ValueError(f"no RAM named {unknown} in the measured design (RAMs: "
                             f"{sorted(self.memories)})")
        most = max(lanes.values(), default=1)

        def at(name: str, law: PartLaw) -> tuple[float, ...]:
            unit = next((u for u in sorted(lanes, key=len, reverse=True)
                         if name.startswith(u)), None)
            return law.at(_array_size(name, rows, cols), lanes[unit] if unit else most)

        parts = {k: at(k, law) for k, law in self.parts.items()}
        bits = {k: exact_bits[k] if k in exact_bits else round(at(k, law)[0])
                for k, law in self.memories.items()}
        return AreaEstimate(parts, bits)


def _law(name: str, ys: tuple[tuple[float, ...], ...],
         variants: tuple[VariantMeasure, ...]) -> PartLaw:
    base, wide, laned = variants
    dx = _array_size(name, wide.rows, wide.cols) - _array_size(name, base.rows, base.cols)
    per_array = tuple((w - b) / dx for b, w in zip(ys[0], ys[1], strict=True))
    per_lane = tuple((n - w) / (laned.lanes - wide.lanes)
                     for w, n in zip(ys[1], ys[2], strict=True))
    x0 = _array_size(name, base.rows, base.cols)
    const = tuple(b - a * x0 - n * base.lanes
                  for b, a, n in zip(ys[0], per_array, per_lane, strict=True))
    return PartLaw(const, per_array, per_lane)


def fit_area_model(variants: tuple[VariantMeasure, VariantMeasure, VariantMeasure]
                   ) -> AreaModel:
    """The laws through three variants (:data:`VARIANTS`): ``base``; ``wide``, a larger
    array at the same lanes; ``laned``, ``wide``'s array at more lanes. ``ValueError`` for
    any other shape of variants (every coefficient must be determined)."""
    base, wide, laned = variants
    if not (wide.lanes == base.lanes < laned.lanes and (wide.rows, wide.cols) ==
            (laned.rows, laned.cols) and min(wide.rows - base.rows, wide.cols - base.cols) > 0):
        raise ValueError("area variants must be: base; a larger array at base's lanes; that "
                         "array at more lanes; got " + ", ".join(
                             f"{v.rows}x{v.cols} L={v.lanes}" for v in variants))
    zero = (0, 0, 0.0)
    names = sorted({k for v in variants for k in v.parts})
    parts = {k: _law(k, tuple(v.parts.get(k, zero) for v in variants), variants)
             for k in names}
    rams = sorted({k for v in variants for k in v.memories})
    memories = {k: _law(k, tuple((v.memories.get(k, 0),) for v in variants), variants)
                for k in rams}
    return AreaModel(parts, memories)
