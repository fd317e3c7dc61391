"""The one number pair an e2e record keeps of an error array against its bound array
(:func:`worst`): the error and the bound at the element of the largest ``err / bound``, so
``err <= bound`` there exactly when it holds at every element. (The largest error and the
bound at another element can compare either way: a record kept that way could fail with
every element within its bound.)

Layer: flows.
"""

from __future__ import annotations

import numpy as np

__all__ = ["worst"]


def worst(err: np.ndarray, bound: np.ndarray) -> tuple[float, float]:
    """``(err, bound)`` at the element of the largest ``err / bound`` (``bound`` broadcast to
    ``err``'s shape; a NaN error counts as infinite, a zero error as ratio 0); ``(0, 0)`` for
    an empty array."""
    e = np.asarray(err, np.float64)
    e = np.where(np.isnan(e), np.inf, e)
    b = np.broadcast_to(np.asarray(bound, np.float64), e.shape)
    if not e.size:
        return 0.0, 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(e == 0, 0.0, e / b)
    i = int(np.argmax(np.where(np.isnan(ratio), np.inf, ratio)))
    return float(e.flat[i]), float(b.flat[i])
