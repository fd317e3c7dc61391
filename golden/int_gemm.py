"""Bit-exact integer GEMM: what an int MAC array with a ``acc_bits`` accumulator computes.

``C[i, j] = sum_k A[i, k] * B[k, j]`` computed exactly in int64. The hardware accumulates in
two's complement modulo ``2**acc_bits``; its result equals the exact one exactly when every
output fits the accumulator, which is what the overflow check enforces (an intermediate wrap that
unwraps again still gives the exact result, by modular arithmetic).
"""

from __future__ import annotations

import numpy as np

from .arrays import ArrayLike, array_function
from .int_types import IntType, int_type

__all__ = ["AccumulatorOverflowError", "check_range", "int_gemm", "random_operands"]


class AccumulatorOverflowError(ValueError):
    """An exact result does not fit the accumulator width."""


@array_function("x")
def check_range(name: str, x: ArrayLike, dtype: IntType) -> ArrayLike:
    """Return ``x`` as int64 after checking that every element is representable in ``dtype``."""
    arr = np.asarray(x)
    if arr.dtype.kind not in "iub":
        raise ValueError(f"{name} must hold integers, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    if arr.size:
        lo, hi = int(arr.min()), int(arr.max())
        if lo < dtype.min or hi > dtype.max:
            bad = lo if lo < dtype.min else hi
            raise ValueError(
                f"{name} holds {bad}, outside {dtype} range [{dtype.min}, {dtype.max}]"
            )
    return arr


@array_function("a", "b")
def int_gemm(
    a: ArrayLike,
    b: ArrayLike,
    a_type: str | IntType = "int8",
    b_type: str | IntType = "int8",
    acc_bits: int = 32,
) -> ArrayLike:
    """Exact ``a @ b`` (int64) for (M, K) x (K, N) operands of the given element types.

    Raises ``ValueError`` on shape mismatch or out-of-range operands and
    :class:`AccumulatorOverflowError` when a result does not fit a signed ``acc_bits`` integer.
    """
    at, bt = int_type(a_type), int_type(b_type)
    a64 = check_range("a", a, at)
    b64 = check_range("b", b, bt)
    if a64.ndim != 2 or b64.ndim != 2:
        raise ValueError(f"a and b must be 2-D, got shapes {a64.shape} and {b64.shape}")
    if a64.shape[1] != b64.shape[0]:
        raise ValueError(f"inner dimensions differ: a is {a64.shape}, b is {b64.shape}")
    if not 2 <= acc_bits <= 63:
        raise ValueError(f"acc_bits must be in 2..63, got {acc_bits}")
    # |a*b| <= 2**15 per term for 8-bit operands, so int64 never overflows below K = 2**47.
    c = a64 @ b64
    acc = IntType(acc_bits, signed=True)
    if c.size and (int(c.min()) < acc.min or int(c.max()) > acc.max):
        bad = int(c.min()) if int(c.min()) < acc.min else int(c.max())
        raise AccumulatorOverflowError(
            f"result {bad} does not fit a signed {acc_bits}-bit accumulator"
        )
    return c


def random_operands(
    m: int,
    k: int,
    n: int,
    a_type: str | IntType = "int8",
    b_type: str | IntType = "int8",
    seed: int = 0,
    extremes: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded random int64 operands spanning each type's full range.

    With ``extremes`` the first row of ``a`` and the first column of ``b`` alternate between the
    type's minimum and maximum, so tests always see e.g. -8/7 and -128/127.
    """
    at, bt = int_type(a_type), int_type(b_type)
    rng = np.random.default_rng(seed)
    a = rng.integers(at.min, at.max + 1, size=(m, k), dtype=np.int64)
    b = rng.integers(bt.min, bt.max + 1, size=(k, n), dtype=np.int64)
    if extremes and m and k and n:
        a[0, :] = np.where(np.arange(k) % 2 == 0, at.min, at.max)
        b[:, 0] = np.where(np.arange(k) % 2 == 0, bt.min, bt.max)
    return a, b
