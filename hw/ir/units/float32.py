"""Float32 arithmetic in primitives: round-to-nearest-even right shifts, the IEEE-754 binary32
encoding of ``acc * 2**lsb`` (the one float rounding of the group dequantizer) and a correctly
rounded float32 division (the activation quantizer's scale and codes).

``round_to_even(x, s)`` is ``x / 2**s`` rounded to nearest, ties to even, for an unsigned
``x`` and a run-time ``s >= 0`` (``s = 0`` is exact)::

    q = x >> s;  rem = x - (q << s);  half = (1 << s) >> 1
    q + [rem > half] + [rem == half and s > 0 and q odd]

``float32_graph`` encodes ``v = acc * 2**lsb`` (``acc`` signed, ``lsb`` a signed exponent) as
binary32 bits, rounding once (``float32_encode`` does it for an unsigned magnitude): with
``L = lod(|acc|)`` the result's LSB exponent is ``k = max(lsb + L - 24, -149)`` (24
significant bits, or the subnormal LSB), so ``q = round_to_even(|acc|, k - lsb)`` (a left
shift when ``k < lsb``: exact) and ``v ~= q * 2**k``. Then ``q >= 2**24`` (rounding carried)
halves ``q`` and raises ``k``; ``q >= 2**23`` is a normal number (exponent field ``k + 150``),
else a subnormal (field 0); a field >= 255 is infinity. The sign is ``acc``'s; ``acc = 0``
gives +0.0. This is what ``numpy``'s float64-to-float32 cast gives for every ``acc`` of up to
53 bits.

``float32_divide(a, b)`` is ``fl32(a / b)``, numpy's float32 division (IEEE-754, RNE), for
finite ``a`` and finite nonzero ``b``, subnormals included. Both operands are unpacked with
their significands normalized (``na, nb`` in ``[2**23, 2**24)``, ``value = sig * 2**exp``),
then a restoring long division, one compare / subtract / mux stage per quotient bit::

    r = na;  for i = 25 .. 0:  t = r if i == 25 else 2 r;  q_i = [t >= nb];  r = t - q_i nb

gives ``Q = floor(na * 2**25 / nb)`` in ``[2**24, 2**26)`` and the remainder ``r``. The
quotient is ``(2 Q + [r != 0]) * 2**(ea - eb - 26)`` up to the sticky bit's weight, which
lies two or more places below the rounding position (``2 Q + sticky`` has 26 or 27 bits, a
float32 keeps at most 24), so :func:`float32_encode` of it rounds exactly as the exact
quotient would: overflow to infinity, gradual underflow, ties to even. The sign is the XOR of
the operands' (so ``0 / -b`` is ``-0.0``). Out of contract: ``b = 0`` gives the infinity of
that sign (also for ``0 / 0``, where IEEE-754 has NaN); an infinity or NaN operand (exponent
field 255) is read as the finite number its field would encode, ``2**128 * (1 + frac)``, and
never yields a NaN.

Layer: hw.ir, the primitive-graph layer (plain Python, no Amaranth).
"""

from __future__ import annotations

from dataclasses import dataclass

from .build import GraphBuilder

__all__ = ["Float32Parts", "float32_divide", "float32_divide_parts", "float32_encode",
           "float32_fields", "float32_graph", "float32_unpack", "round_to_even"]

_SIG = 24               # float32 significand with its hidden bit
_EXP = 10               # signed exponents of normalized significands and quotients
_QUOT = 26              # quotient bits of the long division
_INF = 0x7F800000       # +infinity's pattern


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


def float32_encode(b: GraphBuilder, mag: str, lsb: str) -> str:
    """The binary32 bits of ``mag * 2**lsb`` (``mag`` unsigned, at most 62 bits; ``lsb`` a
    signed exponent) as a 31-bit node: the sign bit is the caller's (module docstring)."""
    aw, ew = b.graph.node(mag).width, b.graph.node(lsb).width + 2
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
    return b.op("add", 31, b.op("shift", 31, field_e, value=23), frac)


def float32_graph(b: GraphBuilder, acc: str, lsb: str) -> str:
    """The binary32 bits (32-bit unsigned node) of ``acc * 2**lsb`` (module docstring)."""
    negative = b.op("compare", 1, acc, b.const(0))
    return b.op("add", 32, b.op("shift", 32, negative, value=31),
                float32_encode(b, b.abs(acc), lsb))


@dataclass(frozen=True)
class Float32Parts:
    """An unpacked float32 (node names): ``value = (-1)**sign * sig * 2**exp`` with ``sig``
    (24 bits) normalized to ``[2**23, 2**24)``, or 0 with ``zero`` set (``exp`` signed,
    ``_EXP`` bits: -173 .. 105)."""

    sign: str
    sig: str
    exp: str
    zero: str


def float32_fields(b: GraphBuilder, bits: str) -> tuple[str, str, str]:
    """``(sign, field, sig)`` of the pattern ``bits``: the sign bit, the 8-bit exponent field
    and the significand (hidden bit included, so 0 for subnormals); the value is
    ``sig * 2**(max(field, 1) - 150)``."""
    sign = b.op("shift", 1, bits, value=-31)
    field_e = b.op("shift", 8, bits, value=-23)
    normal = b.op("compare", 1, b.const(0), field_e)
    sig = b.op("add", _SIG, b.op("buf", 23, bits), b.op("shift", _SIG, normal, value=23))
    return sign, field_e, sig


def float32_unpack(b: GraphBuilder, bits: str) -> Float32Parts:
    """``bits`` (a float32 pattern) with its significand normalized by a leading-one
    detect: ``sig << (24 - L)``, ``exp = max(field, 1) - 150 - (24 - L)``."""
    sign, field_e, sig = float32_fields(b, bits)
    length = b.op("lod", 5, sig)
    norm = b.op("shl_var", _SIG, sig, b.op("sub", 5, b.const(_SIG), length))
    exp = b.op("add", _EXP, b.op("max", 8, field_e, b.const(1)), length, b.const(-174),
               signed=True)
    return Float32Parts(sign, norm, exp, b.op("compare", 1, length, b.const(1)))


def float32_divide_parts(b: GraphBuilder, num: Float32Parts, den: Float32Parts) -> str:
    """The binary32 bits (32-bit node) of ``fl32(num / den)``: the long division and rounding
    of the module docstring."""
    rest, lows = num.sig, []
    for i in range(_QUOT - 1, -1, -1):
        trial = rest if i == _QUOT - 1 else b.op("shift", _SIG + 1, rest, value=1)
        below = b.op("compare", 1, trial, den.sig)
        rest = b.op("mux", _SIG, below, trial, b.op("sub", _SIG, trial, den.sig))
        lows.append(b.op("shift", i + 2, below, value=i + 1))
    # 2 Q + sticky, with Q = 2**26 - 1 - sum(below_i << i)
    sticky = b.op("compare", 1, b.const(0), rest)
    top = b.op("add", _QUOT + 1, b.const((1 << (_QUOT + 1)) - 2), sticky)
    mag = b.op("sub", _QUOT + 1, top, b.op("add", _QUOT + 1, *lows))
    lsb = b.op("sub", _EXP, b.op("sub", _EXP, num.exp, den.exp, signed=True),
               b.const(_QUOT), signed=True)
    body = b.op("mux", 31, den.zero, b.const(_INF), float32_encode(b, mag, lsb))
    sign = b.op("add", 1, num.sign, den.sign)
    return b.op("add", 32, b.op("shift", 32, sign, value=31), body)


def float32_divide(b: GraphBuilder, a_bits: str, b_bits: str) -> str:
    """The binary32 bits (32-bit node) of ``fl32(a / b)`` for the float32 patterns ``a_bits``
    and ``b_bits`` (module docstring; unpack a shared divisor once and use
    :func:`float32_divide_parts` instead)."""
    return float32_divide_parts(b, float32_unpack(b, a_bits), float32_unpack(b, b_bits))
