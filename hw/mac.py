"""The multiply-accumulate function unit (FU) that generated arrays instantiate."""

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
    """One FU: ``sum = (first ? 0 : source) + a * b`` (combinational, wrapping).

    ``stationary=True``: ``source`` is the FU's own accumulator register (output ``acc``),
    which takes ``sum`` on cycles with ``en`` (output-stationary dataflows).
    ``stationary=False``: ``source`` is the ``psum_in`` port (a partial sum arriving from a
    neighbour; reduction chains) and the FU holds no state. Forwarding registers belong to the
    interconnect, not to the FU.
    """

    def __init__(self, spec: MacSpec = MacSpec(), stationary: bool = True) -> None:
        self.spec = spec
        self.stationary = stationary
        super().__init__(self.fu_signature(spec, stationary))

    @staticmethod
    def fu_signature(spec: MacSpec, stationary: bool) -> wiring.Signature:
        """The FU's ports (also what an instantiated FU module exposes)."""
        ports = {
            "a": In(spec.a_shape),
            "b": In(spec.b_shape),
            "first": In(1),
            "sum": Out(spec.acc_shape),
        }
        if stationary:
            ports["en"] = In(1)
            ports["acc"] = Out(spec.acc_shape)
        else:
            ports["psum_in"] = In(spec.acc_shape)
        return wiring.Signature(ports)

    def elaborate(self, platform) -> Module:
        m = Module()
        if self.stationary:
            source = self.acc
            with m.If(self.en):
                m.d.sync += self.acc.eq(self.sum)
        else:
            source = self.psum_in
        m.d.comb += self.sum.eq(Mux(self.first, 0, source) + self.a * self.b)
        return m
