"""Array arguments: numpy arrays and torch tensors alike, results in the caller's kind.

:func:`array_function` wraps a public function and names its array parameters. On each call:

1. **Accepted.** An array argument is a ``numpy.ndarray`` or a ``torch.Tensor``. A Python or
   numpy scalar stands for a 0-d array (numpy functions get it as it is, torch functions as a
   0-d tensor), and ``None`` passes where the parameter's default is ``None``. Anything else
   (a list, a string, ...) raises :class:`ArrayTypeError` naming the argument.
2. **Native kind.** The function computes in its module's native kind, ``"numpy"`` or
   ``"torch"``; every array argument is converted to it without changing a value or a dtype
   (torch ``bfloat16`` / ``float8_*`` and the ``ml_dtypes`` types of the same names are bit
   views of each other). For numpy a tensor is detached and copied to the CPU. For torch an
   array becomes a tensor on the device of the first tensor argument, else on
   ``default_device()`` (the CPU unless given); tensors pass through untouched, so autograd
   keeps working.
3. **Caller's kind.** The first array argument in signature order that is an array or a tensor
   decides the result's kind (scalars and ``None`` do not count; with no array, the native
   kind). An array result, and each array in a tuple result, is converted to it (a tensor on
   the device of the first tensor argument). Everything else - numbers, objects, the packages'
   dataclasses (such as ``golden.nvfp4.NVFP4Tensor``, whose fields define a format in the
   native kind) - is returned as it is.

Converting needs no torch import: a tensor can only exist once torch is imported, so tensors are
recognised through ``sys.modules`` and numpy-only callers never load torch.
"""

from __future__ import annotations

import functools
import inspect
import numbers
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal, ParamSpec, TypeAlias, TypeVar

import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = [
    "ArrayLike",
    "ArrayTypeError",
    "Kind",
    "array_function",
    "kind_of",
    "to_kind",
    "to_numpy",
    "to_torch",
]

ArrayLike: TypeAlias = "np.ndarray | torch.Tensor"
Kind = Literal["numpy", "torch"]

P = ParamSpec("P")
R = TypeVar("R")

#: dtypes numpy holds through ``ml_dtypes`` and torch natively, with the same names.
_BIT_VIEW_DTYPES = ("bfloat16", "float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz",
                    "float8_e5m2fnuz")


class ArrayTypeError(TypeError, ValueError):
    """An array argument that is neither a numpy array nor a torch tensor.

    Also a ``ValueError``: the packages report every other bad input as one.
    """


def _is_tensor(x: object) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def _is_scalar(x: object) -> bool:
    if isinstance(x, np.generic):
        return not isinstance(x, np.flexible)
    return isinstance(x, numbers.Number)


def kind_of(name: str, x: object) -> Kind | None:
    """``"numpy"`` or ``"torch"`` for an array, ``None`` for a scalar; else
    :class:`ArrayTypeError` naming ``name``."""
    if isinstance(x, np.ndarray):
        return "numpy"
    if _is_tensor(x):
        return "torch"
    if _is_scalar(x):
        return None
    raise ArrayTypeError(f"{name} must be a numpy array or a torch tensor, got "
                         f"{type(x).__name__}")


def to_numpy(t: torch.Tensor) -> np.ndarray:
    """The tensor's values as a numpy array of the same dtype (detached, on the CPU)."""
    t = t.detach().cpu()
    name = str(t.dtype).removeprefix("torch.")
    if name in _BIT_VIEW_DTYPES:
        import ml_dtypes
        import torch

        bits = torch.int16 if t.element_size() == 2 else torch.uint8
        return t.view(bits).numpy().view(getattr(ml_dtypes, name))
    return t.resolve_conj().resolve_neg().numpy()


def to_torch(a: np.ndarray, device: Any = None) -> torch.Tensor:
    """The array's values as a tensor of the same dtype (on ``device``, default the CPU)."""
    import torch

    name = a.dtype.name
    if name in _BIT_VIEW_DTYPES:
        a = a.view(np.int16 if a.dtype.itemsize == 2 else np.uint8)
    elif not a.dtype.isnative:
        a = a.astype(a.dtype.newbyteorder("="))
    if not a.flags.writeable or any(s < 0 for s in a.strides):
        a = a.copy()
    t = torch.from_numpy(a)
    if name in _BIT_VIEW_DTYPES:
        t = t.view(getattr(torch, name))
    return t if device is None else t.to(device)


def to_kind(result: R, kind: Kind, device: Any = None) -> R:
    """``result`` with its arrays (itself, or the items of a tuple) in ``kind``; tensors made
    from arrays go to ``device``. Other values are returned unchanged."""
    if type(result) is tuple:
        return tuple(to_kind(r, kind, device) for r in result)  # type: ignore[return-value]
    if kind == "numpy" and _is_tensor(result):
        return to_numpy(result)  # type: ignore[arg-type, return-value]
    if kind == "torch" and isinstance(result, np.ndarray):
        return to_torch(result, device)  # type: ignore[return-value]
    return result


def _convert(name: str, x: Any, kind: Kind | None, native: Kind, device: Any) -> Any:
    """``x`` in the native kind (a scalar: a 0-d tensor for torch, itself for numpy); a failed
    conversion is an :class:`ArrayTypeError` naming ``name``."""
    if native == "numpy":
        return to_numpy(x) if kind == "torch" else x
    if kind == "torch":
        return x
    try:
        if kind == "numpy":
            return to_torch(x, device)
        import torch

        return torch.as_tensor(x, device=device)
    except (TypeError, RuntimeError) as exc:
        raise ArrayTypeError(f"{name} cannot become a torch tensor: {exc}") from exc


def array_function(
    *names: str, native: Kind = "numpy", default_device: Callable[[], Any] | None = None
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorator: the parameters ``names`` take numpy arrays and torch tensors alike (module
    docstring). ``native`` is the kind the function computes in; ``default_device()`` places
    arrays converted to torch when no tensor argument gives a device."""
    if native not in ("numpy", "torch"):
        raise ValueError(f"native must be 'numpy' or 'torch', got {native!r}")

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        sig = inspect.signature(fn)
        unknown = sorted(set(names) - set(sig.parameters))
        if unknown:
            raise TypeError(f"{fn.__qualname__} has no parameters {unknown}")
        ordered = [p for p in sig.parameters if p in names]
        optional = {p for p in ordered if sig.parameters[p].default is None}

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            bound = sig.bind(*args, **kwargs)
            given = _given(bound.arguments, ordered, optional)
            kind, device = _caller(given, native, default_device)
            for name, k, x in given:
                bound.arguments[name] = _convert(name, x, k, native, device)
            result = fn(*bound.args, **bound.kwargs)
            return result if kind == native else to_kind(result, kind, device)

        return wrapper

    return decorate


def _given(arguments: dict[str, Any], ordered: Sequence[str],
           optional: set[str]) -> list[tuple[str, Kind | None, Any]]:
    """``(name, kind, value)`` of the array arguments given, in signature order (``None`` for
    an optional one is skipped); :class:`ArrayTypeError` for a non-array."""
    return [(name, kind_of(name, arguments[name]), arguments[name]) for name in ordered
            if name in arguments and not (arguments[name] is None and name in optional)]


def _caller(given: list[tuple[str, Kind | None, Any]], native: Kind,
            default_device: Callable[[], Any] | None) -> tuple[Kind, Any]:
    """The result's kind (first array or tensor argument's, else native) and the device for
    tensors made from arrays (first tensor argument's, else ``default_device()``)."""
    kind = next((k for _, k, _ in given if k is not None), native)
    tensor = next((x for _, k, x in given if k == "torch"), None)
    if tensor is not None:
        return kind, tensor.device
    return kind, default_device() if default_device is not None else None
