"""sw: Triton reference kernels with the semantics of the ``golden`` entry points.

Importing ``sw``, or :mod:`sw.roofline` (the cost model a mapper uses), imports neither torch nor
triton. Every kernel module imports :mod:`sw._runtime` first, which decides how kernels run: when
no CUDA GPU is visible (and the user has not chosen), it sets ``TRITON_INTERPRET=1`` before any
``@triton.jit`` kernel in ``sw`` is defined, so the kernels run in Triton's CPU interpreter
without the user setting anything. ``sw.INTERPRETED`` says which (reading it makes the decision).

Array arguments (:mod:`sw.arrays`, the rule of :mod:`golden.arrays` with torch as the native
kind): every public function and method that takes array data takes torch tensors and numpy
arrays alike and returns arrays in the caller's kind, with the same dtype and values. With mixed
arguments the first array argument (in signature order) decides. Numpy arrays go to the device
of the first tensor argument, else to the kernel device (the GPU when kernels are compiled for
one, else the CPU). A list, a string or any other object raises
``golden.arrays.ArrayTypeError`` (a ``TypeError`` and a ``ValueError``) naming the argument.
Structured results (``GroupFp8Tensor``, ``ExpandedFp8Tensor``, ``DuoKVCache``) hold tensors.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__all__ = ["INTERPRETED"]

if TYPE_CHECKING:
    INTERPRETED: bool


def __getattr__(name: str) -> object:
    """``INTERPRETED`` on first use (imports torch to look for a GPU; see :mod:`sw._runtime`)."""
    if name == "INTERPRETED":
        from ._runtime import INTERPRETED

        return INTERPRETED
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
