"""Pack integer lanes into the wide words of a host interface, and back.

Lane ``i`` of a word occupies bits ``[i*bits, (i+1)*bits)``, two's complement when signed.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["pack_lanes", "unpack_lanes"]


def pack_lanes(values: Iterable[int], bits: int) -> int:
    mask = (1 << bits) - 1
    word = 0
    for i, v in enumerate(values):
        word |= (int(v) & mask) << (i * bits)
    return word


def unpack_lanes(word: int, count: int, bits: int, signed: bool = True) -> list[int]:
    mask = (1 << bits) - 1
    out = []
    for i in range(count):
        v = (word >> (i * bits)) & mask
        if signed and v >> (bits - 1):
            v -= 1 << bits
        out.append(v)
    return out
