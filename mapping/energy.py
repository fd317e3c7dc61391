"""Per-access energies at 45 nm (Horowitz, ISSCC 2014): an Accelergy-style table in one data
file (``mapping/data/energy_45nm.yaml``, with its citation) and the rules that use it.

The published points (pJ): 8-bit add 0.03, 32-bit add 0.1, 8-bit multiply 0.2, 32-bit multiply
3.1; float add 0.4 (16-bit), 0.9 (32-bit), float multiply 1.1 (16-bit), 3.7 (32-bit); a 64-bit
SRAM (cache) read 10 at 8 KB, 20 at 32 KB, 100 at 1 MB; a 64-bit DRAM access 1300-2600. No
scaling to other technology nodes. The rules:

* **MAC** (:func:`mac_pj`): an integer multiply at the operand width plus an add at the
  accumulator width; the default int8 x int8 MAC with int32 accumulation is the 8-bit
  multiply + the 32-bit add = 0.2 + 0.1 = 0.3 pJ. A width between published points is
  interpolated log-log (a power law through the two neighbours; the published pair implies
  multiply ~ bits^1.98, add ~ bits^0.87), a width outside them takes the nearest point's
  energy (clamped: no extrapolation past the data).
* **Float op** (:func:`fp_op_pj`): one FP32-op equivalent (the unit :mod:`mapping.vector_work`
  counts vector work in, an FMA being 2) is the mean of a float add and a float multiply of
  that width: (0.9 + 3.7) / 2 = 2.3 pJ at 32 bits. Operand fetch (register file, buffers) is
  not included: an underestimate of vector work's energy.
* **SRAM** (:func:`sram_access_pj`): an access of W bits to a memory (or bank) of C bytes
  costs ``W / 64`` times the 64-bit read energy at C (linear in width: more bit lines and
  sense amplifiers per access; the decoder's share makes it a mild overestimate for wide
  rows), the 64-bit energy interpolated log-log in C between the published capacities
  (8 KB = 8192 bytes) and clamped outside them: memories under 8 KB cost the 8 KB energy
  (an overestimate), over 1 MB the 1 MB energy (an underestimate). Writes cost as reads (the
  paper gives reads only).
* **DRAM** (:func:`dram_pj_per_byte`): the 64-bit access energy over 8 bytes. Default: the low
  end, 1.3 nJ per 64 bits = 162.5 pJ per byte, so that savings a design earns by moving fewer
  DRAM bytes are never inflated by the model (conservative for reuse claims); ``which="high"``
  (325 pJ per byte) is the other end, for a sensitivity figure (:func:`dram_range_pj_per_byte`).

Pure Python (PyYAML only).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

__all__ = ["DEFAULT_TABLE", "EnergyTable", "dram_pj_per_byte", "dram_range_pj_per_byte",
           "energy_table", "fp_op_pj", "int_add_pj", "int_mult_pj", "load_energy_table", "mac_pj",
           "sram_access_pj", "table_from_dict"]

DEFAULT_TABLE = "energy_45nm.yaml"
"""The shipped table's file name under ``mapping/data/``."""

Points = tuple[tuple[int, float], ...]


def _points(value: object, what: str) -> Points:
    """(key, pJ) pairs sorted by key: keys positive ints, strictly increasing, energies
    positive and non-decreasing."""
    if isinstance(value, Mapping):
        items = list(value.items())
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise ValueError(f"{what} must map sizes to energies, got {value!r}")
    try:
        pts = tuple(sorted((k, float(v)) for k, v in items))
    except (TypeError, ValueError):
        raise ValueError(f"{what} must map sizes to energies, got {value!r}") from None
    if not pts:
        raise ValueError(f"{what} needs at least one point")
    for n, (k, pj) in enumerate(pts):
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"{what}: size must be a positive integer, got {k!r}")
        if not (math.isfinite(pj) and pj > 0):
            raise ValueError(f"{what}[{k}] must be a positive energy in pJ, got {pj!r}")
        if n and (k == pts[n - 1][0] or pj < pts[n - 1][1]):
            raise ValueError(f"{what}: sizes must be distinct with non-decreasing energies, "
                             f"got {pts[n - 1]} then {(k, pj)}")
    return pts


def _positive(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
            math.isfinite(value) and value > 0):
        raise ValueError(f"{what} must be a positive number, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class EnergyTable:
    """Per-access energies (pJ) of one technology, validated on construction (``ValueError``
    naming the field). ``*_pj`` arithmetic: (width bits, pJ) points; ``sram_read_pj``:
    (capacity bytes, pJ per ``sram_access_bits`` read); DRAM: pJ per ``dram_access_bits``
    access, the published range ``dram_low_pj`` .. ``dram_high_pj`` and the default end."""

    source: str
    node_nm: int
    int_add_pj: Points
    int_mult_pj: Points
    fp_add_pj: Points
    fp_mult_pj: Points
    sram_access_bits: int
    sram_read_pj: Points
    dram_access_bits: int
    dram_low_pj: float
    dram_high_pj: float
    dram_default: str = "low"

    def __post_init__(self) -> None:
        if not isinstance(self.source, str) or not self.source.strip():
            raise ValueError(f"EnergyTable.source must cite the numbers, got {self.source!r}")
        for f in ("node_nm", "sram_access_bits", "dram_access_bits"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"EnergyTable.{f} must be a positive integer, got {v!r}")
        for f in ("int_add_pj", "int_mult_pj", "fp_add_pj", "fp_mult_pj", "sram_read_pj"):
            object.__setattr__(self, f, _points(getattr(self, f), f"EnergyTable.{f}"))
        for f in ("dram_low_pj", "dram_high_pj"):
            object.__setattr__(self, f, _positive(getattr(self, f), f"EnergyTable.{f}"))
        if self.dram_low_pj > self.dram_high_pj:
            raise ValueError(f"EnergyTable.dram_low_pj {self.dram_low_pj} exceeds dram_high_pj "
                             f"{self.dram_high_pj}")
        if self.dram_default not in ("low", "high"):
            raise ValueError(f"EnergyTable.dram_default must be 'low' or 'high', got "
                             f"{self.dram_default!r}")


def _check_keys(d: Mapping[str, Any], known: tuple[str, ...], where: str) -> None:
    extra = sorted(set(d) - set(known))
    missing = [k for k in known if k not in d]
    if extra or missing:
        what = f"unknown key {extra[0]!r}" if extra else f"missing key {missing[0]!r}"
        raise ValueError(f"{where}: {what} (keys: {', '.join(known)})")


def table_from_dict(d: object, where: str = "energy table") -> EnergyTable:
    """The :class:`EnergyTable` of a parsed YAML mapping (the data file's layout)."""
    if not isinstance(d, Mapping):
        raise ValueError(f"{where} must be a mapping, got {type(d).__name__}")
    _check_keys(d, ("source", "node_nm", "int_add_pj", "int_mult_pj", "fp_add_pj", "fp_mult_pj",
                    "sram", "dram"), where)
    sram, dram = d["sram"], d["dram"]
    if not isinstance(sram, Mapping) or not isinstance(dram, Mapping):
        raise ValueError(f"{where}: sram and dram must be mappings")
    _check_keys(sram, ("access_bits", "read_pj"), f"{where}: sram")
    _check_keys(dram, ("access_bits", "low_pj", "high_pj", "default"), f"{where}: dram")
    reads = sram["read_pj"]
    if not isinstance(reads, list) or not all(
            isinstance(p, Mapping) and set(p) == {"capacity_bytes", "pj"} for p in reads):
        raise ValueError(f"{where}: sram.read_pj must be a list of {{capacity_bytes, pj}}")
    return EnergyTable(d["source"], d["node_nm"], d["int_add_pj"], d["int_mult_pj"],
                       d["fp_add_pj"], d["fp_mult_pj"], sram["access_bits"],
                       tuple((p["capacity_bytes"], p["pj"]) for p in reads),
                       dram["access_bits"], dram["low_pj"], dram["high_pj"], dram["default"])


def load_energy_table(path: str | Path | None = None) -> EnergyTable:
    """The table in YAML file ``path`` (default: the shipped 45 nm table); ``ValueError``
    naming the file and the field for a malformed one."""
    if path is None:
        text = resources.files(__package__).joinpath("data", DEFAULT_TABLE).read_text()
        where = DEFAULT_TABLE
    else:
        text, where = Path(path).read_text(), str(path)
    try:
        return table_from_dict(yaml.safe_load(text), where)
    except yaml.YAMLError as exc:
        raise ValueError(f"{where}: not YAML: {exc}") from None


@lru_cache(maxsize=1)
def energy_table() -> EnergyTable:
    """The shipped 45 nm table (loaded once)."""
    return load_energy_table()


def _loglog(points: Points, x: float) -> float:
    """Piecewise log-log interpolation through ``points`` (exact at them), clamped to the end
    values."""
    for px, py in points:
        if x == px:
            return py
    if x <= points[0][0]:
        return points[0][1]
    if x >= points[-1][0]:
        return points[-1][1]
    for (x0, y0), (x1, y1) in zip(points, points[1:], strict=False):
        if x <= x1:
            t = math.log(x / x0) / math.log(x1 / x0)
            return math.exp(math.log(y0) + t * math.log(y1 / y0))
    raise AssertionError("unreachable")


def _bits(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{what} must be a positive integer, got {value!r}")
    return value


def int_mult_pj(bits: int, *, table: EnergyTable | None = None) -> float:
    """pJ of one ``bits`` x ``bits`` integer multiply (log-log between published widths,
    clamped outside)."""
    return _loglog((table or energy_table()).int_mult_pj, _bits(bits, "bits"))


def int_add_pj(bits: int, *, table: EnergyTable | None = None) -> float:
    """pJ of one ``bits``-bit integer add (log-log between published widths, clamped)."""
    return _loglog((table or energy_table()).int_add_pj, _bits(bits, "bits"))


def fp_op_pj(bits: int = 32, *, table: EnergyTable | None = None) -> float:
    """pJ of one float op equivalent of ``bits`` bits: the mean of a float add and a float
    multiply (log-log between published widths, clamped outside): 2.3 pJ at 32 bits, 45 nm."""
    t = table or energy_table()
    b = _bits(bits, "bits")
    return (_loglog(t.fp_add_pj, b) + _loglog(t.fp_mult_pj, b)) / 2


def mac_pj(mult_bits: int = 8, acc_bits: int = 32, *, table: EnergyTable | None = None
           ) -> float:
    """pJ of one multiply-accumulate: a ``mult_bits`` integer multiply plus an ``acc_bits``
    add (default int8 x int8 into int32: 0.2 + 0.1 = 0.3 pJ at 45 nm)."""
    return int_mult_pj(mult_bits, table=table) + int_add_pj(acc_bits, table=table)


def sram_access_pj(width_bits: int, capacity_bytes: int, *,
                   table: EnergyTable | None = None) -> float:
    """pJ of one access of ``width_bits`` bits to an SRAM of ``capacity_bytes`` bytes: the
    published read energy per access width (64 bits) at that capacity, log-log interpolated
    and clamped to the end points, times ``width_bits / 64``."""
    t = table or energy_table()
    per = _loglog(t.sram_read_pj, _bits(capacity_bytes, "capacity_bytes"))
    return per * _bits(width_bits, "width_bits") / t.sram_access_bits


def dram_range_pj_per_byte(*, table: EnergyTable | None = None) -> tuple[float, float]:
    """(low, high) pJ per DRAM byte: the published range over the access's bytes."""
    t = table or energy_table()
    return (t.dram_low_pj * 8 / t.dram_access_bits, t.dram_high_pj * 8 / t.dram_access_bits)


def dram_pj_per_byte(which: str = "default", *, table: EnergyTable | None = None) -> float:
    """pJ per DRAM byte at the ``"low"`` or ``"high"`` end of the range, or the table's
    ``"default"`` end (the low one: see the module docstring)."""
    t = table or energy_table()
    if which == "default":
        which = t.dram_default
    if which not in ("low", "high"):
        raise ValueError(f"which must be 'default', 'low' or 'high', got {which!r}")
    low, high = dram_range_pj_per_byte(table=t)
    return low if which == "low" else high
