"""Integer element types of hardware tensors (``int4``, ``uint8``, ``int32``, ...)."""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["IntType", "int_type"]

_NAME = re.compile(r"^(u?)int([1-9][0-9]*)$")


@dataclass(frozen=True)
class IntType:
    """A two's-complement (``signed``) or unsigned integer of ``bits`` bits."""

    bits: int
    signed: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.bits, int) or not 1 <= self.bits <= 64:
            raise ValueError(f"IntType bits must be an integer in 1..64, got {self.bits!r}")

    @property
    def min(self) -> int:
        return -(1 << (self.bits - 1)) if self.signed else 0

    @property
    def max(self) -> int:
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1

    @property
    def name(self) -> str:
        return f"{'' if self.signed else 'u'}int{self.bits}"

    def __str__(self) -> str:
        return self.name

    def contains(self, value: int) -> bool:
        return self.min <= value <= self.max


def int_type(spec: str | IntType) -> IntType:
    """Parse ``"int8"`` / ``"uint4"`` (or pass an :class:`IntType` through)."""
    if isinstance(spec, IntType):
        return spec
    m = _NAME.match(str(spec))
    if m is None:
        raise ValueError(f"unknown integer type {spec!r}: expected 'intN' or 'uintN', e.g. 'int8'")
    return IntType(int(m.group(2)), signed=m.group(1) == "")
