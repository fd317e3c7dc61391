"""Exact integer linear algebra for space-time maps (small matrices, Python ints/Fractions).

Layer: hw.front, the planning layer (plain Python, no Amaranth).
"""

from __future__ import annotations

import itertools
from fractions import Fraction
from math import gcd

__all__ = ["determinant", "integer_inverse", "matvec", "null_vectors", "primitive", "rank"]

Matrix = tuple[tuple[int, ...], ...]


def matvec(m: Matrix, v: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(sum(a * b for a, b in zip(row, v, strict=True)) for row in m)


def determinant(m: Matrix) -> int:
    """Exact determinant by fraction-free elimination."""
    n = len(m)
    a = [[Fraction(x) for x in row] for row in m]
    det = Fraction(1)
    for c in range(n):
        pivot = next((r for r in range(c, n) if a[r][c] != 0), None)
        if pivot is None:
            return 0
        if pivot != c:
            a[c], a[pivot] = a[pivot], a[c]
            det = -det
        det *= a[c][c]
        for r in range(c + 1, n):
            f = a[r][c] / a[c][c]
            for k in range(c, n):
                a[r][k] -= f * a[c][k]
    return int(det)


def integer_inverse(m: Matrix) -> Matrix:
    """Inverse of a unimodular integer matrix (``|det| == 1``), exact."""
    n = len(m)
    a = [[Fraction(x) for x in row] + [Fraction(int(i == j)) for j in range(n)]
         for i, row in enumerate(m)]
    for c in range(n):
        pivot = next((r for r in range(c, n) if a[r][c] != 0), None)
        if pivot is None:
            raise ValueError("matrix is singular")
        a[c], a[pivot] = a[pivot], a[c]
        p = a[c][c]
        a[c] = [x / p for x in a[c]]
        for r in range(n):
            if r != c and a[r][c] != 0:
                f = a[r][c]
                a[r] = [x - f * y for x, y in zip(a[r], a[c], strict=True)]
    inv = [row[n:] for row in a]
    if any(x.denominator != 1 for row in inv for x in row):
        raise ValueError("inverse is not integral")
    return tuple(tuple(int(x) for x in row) for row in inv)


def primitive(v: tuple[int, ...]) -> tuple[int, ...]:
    """``v`` divided by the gcd of its entries."""
    g = 0
    for x in v:
        g = gcd(g, abs(x))
    return tuple(x // g for x in v) if g > 1 else tuple(v)


def null_vectors(m: Matrix, n: int, bound: int = 2) -> list[tuple[int, ...]]:
    """Primitive nonzero integer vectors ``v`` with ``m . v = 0`` and ``|v_i| <= bound``.

    One of each ``+v / -v`` pair (the one whose first nonzero entry is positive), in a fixed
    order. ``m`` may have zero rows (then every small primitive vector qualifies).
    """
    found = []
    for v in itertools.product(range(-bound, bound + 1), repeat=n):
        if not any(v):
            continue
        first = next(x for x in v if x)
        if first < 0 or primitive(v) != v:
            continue
        if all(sum(a * b for a, b in zip(row, v, strict=True)) == 0 for row in m):
            found.append(v)
    return found


def rank(m: Matrix, n: int) -> int:
    """Rank of an (r x n) integer matrix."""
    a = [[Fraction(x) for x in row] for row in m]
    r = 0
    for c in range(n):
        pivot = next((i for i in range(r, len(a)) if a[i][c] != 0), None)
        if pivot is None:
            continue
        a[r], a[pivot] = a[pivot], a[r]
        for i in range(len(a)):
            if i != r and a[i][c] != 0:
                f = a[i][c] / a[r][c]
                a[i] = [x - f * y for x, y in zip(a[i], a[r], strict=True)]
        r += 1
    return r
