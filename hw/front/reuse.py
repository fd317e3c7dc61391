"""Reuse analysis: which space-time displacements carry the same tensor element.

Two iterations ``I`` and ``I + dI`` touch the same element of tensor X iff ``A_X . dI = 0``.
Under the space-time map ``[s; t] = T . I`` that reuse is the displacement
``(ds, dt) = T . dI``, classified as

* ``direct``      ``dt == 0, ds != 0``: a wire (broadcast / multicast) in the same cycle;
* ``delay``       ``dt > 0, ds != 0``: systolic forwarding through ``dt`` registers;
* ``stationary``  ``ds == 0``: the element stays in one FU for ``dt`` cycles.

Layer: hw.front, the planning layer (plain Python, no Amaranth).
"""

from __future__ import annotations

from dataclasses import dataclass

from .affine import Matrix, matvec, null_vectors, rank

__all__ = ["ReuseVector", "reuse_vectors"]


@dataclass(frozen=True)
class ReuseVector:
    """A primitive reuse displacement, oriented forward in time (``dt >= 0``)."""

    d_iter: tuple[int, ...]     #: the iteration displacement dI (over the active dims)
    d_space: tuple[int, ...]
    d_time: int

    @property
    def kind(self) -> str:
        if not any(self.d_space):
            return "stationary"
        return "direct" if self.d_time == 0 else "delay"


def reuse_vectors(access: Matrix, transform: Matrix, n_space: int,
                  bound: int = 2) -> tuple[int, list[ReuseVector]]:
    """(null-space dimension, small primitive reuse vectors) of an access under ``transform``.

    ``access`` and ``transform`` are restricted to the active dims. Vectors with ``dt == 0`` are
    listed in both orientations (a wire can carry data either way); others with ``dt > 0``.
    """
    n = len(transform)
    dim = n - rank(access, n)
    out: list[ReuseVector] = []
    for v in null_vectors(access, n, bound):
        st = matvec(transform, v)
        ds, dt = st[:n_space], st[n_space]
        if dt < 0 or (dt == 0 and not any(ds)):
            v, ds, dt = tuple(-x for x in v), tuple(-x for x in ds), -dt
        out.append(ReuseVector(v, ds, dt))
        if dt == 0:
            out.append(ReuseVector(tuple(-x for x in v), tuple(-x for x in ds), 0))
    return dim, out
