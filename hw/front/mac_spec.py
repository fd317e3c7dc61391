"""The arithmetic of a MAC FU: operand types and accumulator width.

Layer: hw.front, the planning layer (plain Python, no Amaranth).
"""

from __future__ import annotations

from dataclasses import dataclass

from golden.int_types import IntType, int_type

__all__ = ["MacSpec"]


@dataclass(frozen=True)
class MacSpec:
    """Operand types and accumulator width of a MAC FU, validated on construction."""

    a_type: IntType = IntType(8)
    b_type: IntType = IntType(8)
    acc_bits: int = 32

    def __post_init__(self) -> None:
        object.__setattr__(self, "a_type", int_type(self.a_type))
        object.__setattr__(self, "b_type", int_type(self.b_type))
        if self.a_type.bits > 16 or self.b_type.bits > 16:
            raise ValueError(
                f"MAC operands (the input tensors' types) are at most 16 bits, got "
                f"{self.a_type} x {self.b_type}"
            )
        if not self.product_bits <= self.acc_bits <= 64:
            raise ValueError(
                f"the accumulator type must be {self.product_bits}..64 bits wide (the `type` of "
                f"the accumulate tensor) for {self.a_type} x {self.b_type} inputs, got "
                f"{self.acc_bits} bits"
            )

    @property
    def product_bits(self) -> int:
        """Bits of the exact signed product (one sign bit covers every signedness mix)."""
        return self.a_type.bits + self.b_type.bits + (0 if self.a_type.signed or
                                                      self.b_type.signed else 1)
