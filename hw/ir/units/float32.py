"""Float32 rounding in primitives: round-to-nearest-even right shifts and the IEEE-754 binary32
encoding of ``acc * 2**lsb`` (the one float rounding of the group dequantizer).

``round_to_even(x, s)`` is ``x / 2**s`` rounded to nearest, ties to even, for an unsigned
``x`` and a run-time ``s >= 0`` (``s = 0`` is exact)::

    q = x >> s;  rem = x - (q << s);  half = (1 << s) >> 1
    q + [rem > half] + [rem == half and s > 0 and q odd]

``float32_graph`` encodes ``v = acc * 2**lsb`` (``acc`` signed, ``lsb`` a signed exponent) as
binary32 bits, rounding once: with ``L = lod(|acc|)`` the result's LSB exponent is
``k = max(lsb + L - 24, -149)`` (24 significant bits, or the subnormal LSB), so
``q = round_to_even(|acc|, k - lsb)`` (a left shift when ``k < lsb``: exact) and
``v ~= q * 2**k``. Then ``q >= 2**24`` (rounding carried) halves ``q`` and raises ``k``;
``q >= 2**23`` is a normal number (exponent field ``k + 150``), else a subnormal (field 0);
a field >= 255 is infinity. The sign is ``acc``'s; ``acc = 0`` gives +0.0. This is what
``numpy``'s float64-to-float32 cast gives for every ``acc`` of up to 53 bits.

Layer: hw.ir, the primitive-graph layer (plain Python, no Amaranth).
"""

from __future__ import annotations

from .build import GraphBuilder

__all__ = ["float32_graph", "round_to_even"]


def round_to_even(b: GraphBuilder, x: str, shift: str, width: int) -> str:
    """``x / 2**shift`` (``x`` unsigned, ``0 <= shift``) rounded to nearest, ties to even, in
    ``width`` bits (see the module docstring)."""
    xw = b.graph.node(x).width
    q = b.op("shr_var", xw, x, shift)
    rem = b.op("sub", xw, x, b.op("shl_var", xw, q, shift))
    half = b.op("shift", xw + 1, b.op("shl_var", xw + 2, b.const(1), shift), value=-1)
    above = b.op("compare", 1, half, rem)
    below = b.op("compare", 1, rem, half)
    tie = b.op("sub", 1, b.const(1), b.op("add", 2, above, below))
    shifted = b.op("compare", 1, b.const(0), shift)
    odd = b.op("buf", 1, q)
    up = b.op("add", 1, above, b.op("mul", 1, b.op("mul", 1, tie, shifted), odd))
    return b.op("add", width, q, up)


def float32_graph(b: GraphBuilder, acc: str, lsb: str) -> str:
    """The binary32 bits (32-bit unsigned node) of ``acc * 2**lsb`` (module docstring)."""
    aw, ew = b.graph.node(acc).width, b.graph.node(lsb).width + 2
    negative = b.op("compare", 1, acc, b.const(0))
    mag = b.abs(acc)
    length = b.op("lod", aw.bit_length(), mag)
    k = b.op("max", ew, b.op("add", ew, lsb, length, b.const(-24), signed=True),
             b.const(-149), signed=True)
    down = b.op("sub", ew, k, lsb, signed=True)
    right = b.op("max", ew, down, b.const(0, 1, False), signed=True)
    left = b.op("max", ew, b.op("sub", ew, b.const(0), down, signed=True),
                b.const(0, 1, False), signed=True)
    capped = b.op("min", 7, right, b.const(aw + 1), signed=True)
    q = b.op("shl_var", 26, round_to_even(b, mag, capped, 26), left)
    carry = b.op("shift", 1, q, value=-24)
    q = b.op("shr_var", 25, q, carry)
    normal = b.op("shift", 1, q, value=-23)
    field_e = b.op("add", ew, k, b.const(150), carry, signed=True)
    field_e = b.op("mux", ew, normal, field_e, b.const(0, 1, False), signed=True)
    inf = b.op("compare", 1, b.const(254), field_e)
    field_e = b.op("mux", 8, inf, b.const(255), field_e)
    frac = b.op("mux", 23, inf, b.const(0, 1, False), b.op("buf", 23, q))
    return b.op("add", 32, b.op("shift", 32, negative, value=31),
                b.op("shift", 31, field_e, value=23), frac)
