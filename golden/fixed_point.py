"""Fixed-point primitives shared by the bit-exact datapath models.

All functions take integer arrays (numpy or torch; :mod:`golden.arrays`) or Python ints, compute
in int64 numpy and define exactly what a hardware block computes, so RTL can be held to them bit
for bit. Results are int64, in the argument's kind.
"""

from __future__ import annotations

import numpy as np

from .arrays import ArrayLike, array_function

__all__ = ["reciprocal", "round_shift_right", "saturate", "to_fixed"]


@array_function("x")
def round_shift_right(x: ArrayLike | int, shift: int) -> ArrayLike:
    """``round(x / 2**shift)`` with ties toward +inf: ``(x + 2**(shift-1)) >> shift``.

    An arithmetic shift (floor) after adding half an LSB; ``shift == 0`` returns ``x``. Exact
    on all of int64 and for any ``shift``: computed as ``(x >> s) + bit s-1 of x`` (no sum to
    overflow), and 0 from ``s = 64`` on (where int64 shifts would wrap their count).
    """
    if shift < 0:
        raise ValueError(f"shift must be >= 0, got {shift}")
    x = np.asarray(x, dtype=np.int64)
    if shift == 0:
        return x.copy()
    if shift >= 64:
        return np.zeros_like(x)
    return (x >> np.int64(shift)) + ((x >> np.int64(shift - 1)) & 1)


@array_function("x")
def saturate(x: ArrayLike | int, bits: int, signed: bool = True) -> ArrayLike:
    """Clamp to the range of a ``bits``-wide (signed or unsigned) integer."""
    if not 1 <= bits <= 63:
        raise ValueError(f"bits must be in 1..63, got {bits}")
    lo = -(1 << (bits - 1)) if signed else 0
    hi = (1 << (bits - 1)) - 1 if signed else (1 << bits) - 1
    return np.clip(np.asarray(x, dtype=np.int64), lo, hi)


@array_function("x")
def to_fixed(x: ArrayLike | float, frac_bits: int) -> ArrayLike:
    """Nearest fixed-point code of a float with ``frac_bits`` fractional bits (half away from 0)."""
    if frac_bits < 0:
        raise ValueError(f"frac_bits must be >= 0, got {frac_bits}")
    xf = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(xf)):
        raise ValueError("to_fixed: input holds NaN or Inf")
    scaled = xf * float(1 << frac_bits)
    return (np.sign(scaled) * np.floor(np.abs(scaled) + 0.5)).astype(np.int64)


@array_function("d")
def reciprocal(d: ArrayLike | int, out_frac_bits: int) -> ArrayLike:
    """``round(2**out_frac_bits / d)`` for positive integers ``d`` (ties toward +inf).

    The exact integer quotient a divider (or a table + Newton step rounded to the same result)
    produces: ``(2**out_frac_bits + d // 2) // d``.
    """
    if not 0 <= out_frac_bits <= 62:
        raise ValueError(f"out_frac_bits must be in 0..62, got {out_frac_bits}")
    d = np.asarray(d, dtype=np.int64)
    if np.any(d <= 0):
        raise ValueError(f"reciprocal needs positive divisors, got minimum {int(d.min())}")
    one = np.int64(1) << np.int64(out_frac_bits)
    return (one + d // 2) // d
