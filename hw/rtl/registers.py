"""Registers of a generated design, created by name and counted by purpose.

The counts are the report's register figures (:mod:`hw.check.report`), cross-checked against
the emitted netlist; every register the generator creates outside the FUs goes through here.

Layer: hw.rtl, the Amaranth layer.
"""

from __future__ import annotations

from collections import Counter

from amaranth.hdl import Module, Signal

__all__ = ["RegisterCounter"]


class RegisterCounter:
    """Makes registers and adds their bits to ``bits[purpose]``."""

    def __init__(self) -> None:
        self.bits: Counter[str] = Counter()

    def reg(self, shape, name: str, purpose: str, init: int = 0) -> Signal:
        """A new register (a :class:`Signal` the caller drives from a sync domain)."""
        sig = Signal(shape, name=name, init=init)
        self.bits[purpose] += len(sig)
        return sig

    def delayed(self, m: Module, value, cycles: int, name: str, purpose: str,
                cache: dict | None = None):
        """``value`` through ``cycles`` registers ``<name>_d0..``; with ``cache``, one chain per
        (value, cycles)."""
        key = (id(value), cycles)
        if cache is not None and key in cache:
            return cache[key]
        out = value
        for k in range(cycles):
            reg = self.reg(out.shape(), f"{name}_d{k}", purpose)
            m.d.sync += reg.eq(out)
            out = reg
        if cache is not None:
            cache[key] = out
        return out
