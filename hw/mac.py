"""One multiply-accumulate function unit (FU): ``acc <= (clear ? 0 : acc) + (en ? a * b : 0)``."""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Module, Mux, Shape, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from golden.int_types import IntType, int_type

__all__ = ["MacSpec", "MacUnit"]


@dataclass(frozen=True)
class MacSpec:
    """Operand types and accumulator width of a MAC FU."""

    a_type: IntType = IntType(8)
    b_type: IntType = IntType(8)
    acc_bits: int = 32

    def __post_init__(self) -> None:
        object.__setattr__(self, "a_type", int_type(self.a_type))
        object.__setattr__(self, "b_type", int_type(self.b_type))
        if self.a_type.bits > 16 or self.b_type.bits > 16:
            raise ValueError(
                f"MAC operands are at most 16 bits, got {self.a_type} x {self.b_type}"
            )
        if not self.product_bits <= self.acc_bits <= 64:
            raise ValueError(
                f"acc_bits must be in {self.product_bits}..64 for {self.a_type} x "
                f"{self.b_type}, got {self.acc_bits}"
            )

    @property
    def product_bits(self) -> int:
        """Bits of the exact signed product (one sign bit covers every signedness mix)."""
        return self.a_type.bits + self.b_type.bits + (0 if self.a_type.signed or
                                                      self.b_type.signed else 1)

    @property
    def a_shape(self) -> Shape:
        return _shape(self.a_type)

    @property
    def b_shape(self) -> Shape:
        return _shape(self.b_type)

    @property
    def acc_shape(self) -> Shape:
        return signed(self.acc_bits)


def _shape(t: IntType) -> Shape:
    return signed(t.bits) if t.signed else unsigned(t.bits)


class MacUnit(wiring.Component):
    """A MAC FU with a registered, two's-complement (wrapping) accumulator.

    Ports: ``a``, ``b`` operands; ``en`` adds ``a * b``; ``clear`` restarts the sum from zero in
    the same cycle (``clear & en`` loads ``a * b``); ``acc`` is the accumulator register.
    Purely combinational besides ``acc``: forwarding registers belong to the interconnect.
    """

    def __init__(self, spec: MacSpec = MacSpec()) -> None:
        self.spec = spec
        super().__init__({
            "a": In(spec.a_shape),
            "b": In(spec.b_shape),
            "en": In(1),
            "clear": In(1),
            "acc": Out(spec.acc_shape),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        product = self.a * self.b
        base = Mux(self.clear, 0, self.acc)
        with m.If(self.en):
            m.d.sync += self.acc.eq(base + product)
        with m.Elif(self.clear):
            m.d.sync += self.acc.eq(0)
        return m
