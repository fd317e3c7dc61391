"""Bit-exact reference of an affine MAC loop nest: ``C[A_c I + c] += A[A_a I + a] * B[A_b I + b]``.

The model every generated array is held to: exact int64 sums over the iteration box
``0 <= I < extents``, with the same overflow rule as :func:`golden.int_gemm.int_gemm`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .arrays import ArrayLike, array_function
from .int_gemm import AccumulatorOverflowError

__all__ = ["affine_mac", "conv2d"]

Access = tuple[Sequence[Sequence[int]], Sequence[int]]


def _indices(access: Access, grid: np.ndarray) -> tuple[np.ndarray, ...]:
    rows, offset = access
    return tuple(grid @ np.asarray(row, dtype=np.int64) + off
                 for row, off in zip(rows, offset, strict=True))


@array_function("a", "b")
def affine_mac(
    extents: Sequence[int],
    a: ArrayLike,
    a_access: Access,
    b: ArrayLike,
    b_access: Access,
    c_shape: Sequence[int],
    c_access: Access,
    acc_bits: int = 32,
    chunk: int = 1 << 20,
) -> ArrayLike:
    """Exact output (int64) of the loop nest; raises on out-of-range indices or overflow."""
    extents = tuple(int(e) for e in extents)
    if any(e < 1 for e in extents):
        raise ValueError(f"extents must be positive, got {extents}")
    a64, b64 = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    c = np.zeros(tuple(c_shape), dtype=np.int64)
    total = int(np.prod(extents))
    for start in range(0, total, chunk):
        flat = np.arange(start, min(total, start + chunk), dtype=np.int64)
        grid = np.stack(np.unravel_index(flat, extents), axis=1)
        ia, ib, ic = (_indices(acc, grid) for acc in (a_access, b_access, c_access))
        for name, idx, shape in (("a", ia, a64.shape), ("b", ib, b64.shape), ("c", ic, c.shape)):
            for axis, (i, n) in enumerate(zip(idx, shape, strict=True)):
                if i.size and (i.min() < 0 or i.max() >= n):
                    raise ValueError(f"{name} index on axis {axis} reaches {int(i.max())}, "
                                     f"outside its extent {n}")
        np.add.at(c, ic, a64[ia] * b64[ib])
    lo, hi = -(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1
    if c.size and (c.min() < lo or c.max() > hi):
        bad = int(c.min()) if c.min() < lo else int(c.max())
        raise AccumulatorOverflowError(f"result {bad} does not fit a signed {acc_bits}-bit "
                                       f"accumulator")
    return c


@array_function("image", "weights")
def conv2d(image: ArrayLike, weights: ArrayLike, acc_bits: int = 32) -> ArrayLike:
    """Exact valid stride-1 convolution ``O[k, y, x] = sum_{c, r, s} W[k, c, r, s]
    I[c, y + r, x + s]`` of ``image`` (C x H x W) and ``weights`` (K x C x R x S), as the loop
    nest over (k, c, y, x, r, s) of :func:`affine_mac` (same overflow rule)."""
    img, w = np.asarray(image), np.asarray(weights)
    if img.ndim != 3 or w.ndim != 4 or img.shape[0] != w.shape[1]:
        raise ValueError(f"expected image C x H x W and weights K x C x R x S with the same C, "
                         f"got {img.shape} and {w.shape}")
    (c, h, wd), (k, _, r, s) = img.shape, w.shape
    if r > h or s > wd:
        raise ValueError(f"a {r}x{s} kernel does not fit a {h}x{wd} image")
    y, x = h - r + 1, wd - s + 1
    unit = np.eye(6, dtype=np.int64)        # rows: k, c, y, x, r, s
    w_access = (unit[[0, 1, 4, 5]], (0, 0, 0, 0))
    i_access = ((unit[1], unit[2] + unit[4], unit[3] + unit[5]), (0, 0, 0))
    o_access = (unit[[0, 2, 3]], (0, 0, 0))
    return affine_mac((k, c, y, x, r, s), w, w_access, img, i_access, (k, y, x), o_access,
                      acc_bits=acc_bits)
