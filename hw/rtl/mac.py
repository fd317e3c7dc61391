"""The multiply-accumulate function unit (FU) that generated arrays instantiate.

Layer: hw.rtl, the Amaranth layer.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Shape, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from golden.int_types import IntType

from ..front.mac_spec import MacSpec

__all__ = ["MacUnit", "mac_shapes"]


def _shape(t: IntType) -> Shape:
    return signed(t.bits) if t.signed else unsigned(t.bits)


def mac_shapes(spec: MacSpec) -> tuple[Shape, Shape, Shape]:
    """Amaranth shapes of ``spec``'s operands a, b and of its (signed) accumulator."""
    return _shape(spec.a_type), _shape(spec.b_type), signed(spec.acc_bits)


class MacUnit(wiring.Component):
    """One FU: ``sum = (first ? 0 : source) + a * b`` (combinational, wrapping).

    ``stationary=True``: ``source`` is the FU's own accumulator register (output ``acc``),
    which takes ``sum`` on cycles with ``en`` (output-stationary dataflows).
    ``stationary=False``: ``source`` is the ``psum_in`` port (a partial sum arriving from a
    neighbour; reduction chains) and the FU holds no state. Forwarding registers belong to the
    interconnect, not to the FU.
    """

    def __init__(self, spec: MacSpec | None = None, stationary: bool = True) -> None:
        spec = MacSpec() if spec is None else spec
        self.spec = spec
        self.stationary = stationary
        super().__init__(self.fu_signature(spec, stationary))

    @staticmethod
    def fu_signature(spec: MacSpec, stationary: bool) -> wiring.Signature:
        """The FU's ports (also what an instantiated FU module exposes)."""
        a_shape, b_shape, acc_shape = mac_shapes(spec)
        ports = {
            "a": In(a_shape),
            "b": In(b_shape),
            "first": In(1),
            "sum": Out(acc_shape),
        }
        if stationary:
            ports["en"] = In(1)
            ports["acc"] = Out(acc_shape)
        else:
            ports["psum_in"] = In(acc_shape)
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
