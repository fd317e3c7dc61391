"""Array arguments of ``sw``: :func:`golden.arrays.array_function` with torch as native kind.

:func:`tensor_function` names a function's array parameters; tensors pass through untouched,
numpy arrays become tensors (same dtype and values) on the device of the first tensor argument,
else on :func:`sw._runtime.kernel_device`, and array results come back in the kind of the first
array argument (see :mod:`golden.arrays` for the whole contract).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ParamSpec, TypeVar

from golden.arrays import ArrayLike, ArrayTypeError, array_function

from ._runtime import kernel_device

__all__ = ["ArrayLike", "ArrayTypeError", "tensor_function"]

P = ParamSpec("P")
R = TypeVar("R")


def tensor_function(*names: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorator: the parameters ``names`` take torch tensors and numpy arrays alike."""
    return array_function(*names, native="torch", default_device=kernel_device)
