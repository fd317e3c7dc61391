"""Rows of a memory port as a unit's lanes see them: beat ``b`` of a row of ``E`` elements
gives lane ``l`` element ``b * lanes + l``, and a row being built takes the lanes' results
back into the same elements (:mod:`hw.rtl.accel_units`).

Layer: hw.rtl, the Amaranth layer.
"""

from __future__ import annotations

from amaranth.hdl import Array, Module, Mux

from ..front.spec_model import SpecError

__all__ = ["collect", "lanes_of", "log2_exact"]


def log2_exact(n: int, what: str) -> int:
    """``log2(n)`` of a power of two; ``SpecError`` naming ``what`` (a unit's RTL addresses
    rows by shifts) otherwise."""
    if n < 1 or n & (n - 1):
        raise SpecError(f"{what} must be a power of two for the units' RTL, got {n}")
    return n.bit_length() - 1


def lanes_of(beat, lanes: int, row: list, cols) -> list:
    """The ``lanes`` elements of ``row`` in ``beat`` (element ``beat * lanes + l``), 0 from
    element ``cols`` on (what the command does not name reaches no reduction)."""
    per = len(row) // lanes
    picked = list(row[:lanes]) if per == 1 else \
        [Array([row[b * lanes + lane] for b in range(per)])[beat] for lane in range(lanes)]
    return [Mux(cols > beat * lanes + lane, x, 0) for lane, x in enumerate(picked)]


def collect(m: Module, beat, valid, lanes: int, values: list, row: list) -> None:
    """Register ``values`` (one per lane) into elements ``beat * lanes + l`` of ``row`` (sign
    or zero extended, as each value is, or truncated)."""
    for b in range(-(-len(row) // lanes)):
        with m.If(valid & (beat == b)):
            m.d.sync += [row[b * lanes + lane].eq(values[lane]) for lane in range(lanes)
                         if b * lanes + lane < len(row)]
