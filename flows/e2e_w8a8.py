"""The W8A8 linear of the e2e run (:mod:`flows.e2e`), shared by every target that runs one
(the accelerator's GEMMs, :mod:`flows.e2e_conv`'s pointwise convolutions, the GPU run's
``sw.int8_gemm``):

* **operands** (:func:`w8a8_operands`): the activations' rows and the weights' output channels
  quantized symmetric to int8 (:func:`golden.svdquant_fixed.quantize_symmetric`);
* **output** (:func:`w8a8_output`): ``y = C s_a s_w^T + b`` in float32 of the int32 product
  ``C = qa qw^T``;
* **error** (:func:`w8a8_error`): against the float linear ``a w^T + b`` (float64), bounded
  by ``sum_k |a| s_w / 2 + s_a / 2 |w| + k s_a s_w / 4`` plus float32 rounding of the
  dequantization (``4 u |y| + u |b|``, ``u = 2**-24``).

Layer: flows.
"""

from __future__ import annotations

import numpy as np

from golden.svdquant_fixed import quantize_symmetric

from .e2e_error import worst

__all__ = ["w8a8_error", "w8a8_operands", "w8a8_output"]

_U = 2.0 ** -24


def w8a8_operands(torch, linear, x) -> tuple[np.ndarray, ...]:
    """``linear`` on activations ``x`` (..., K) as a W8A8 GEMM's operands (module docstring):
    ``(a (M, K), w (N, K), bias (N,) or None)`` float32 and the codes and scales ``(qa (M, K),
    sa (M,), qw (N, K), sw (N,))`` of :func:`quantize_symmetric`."""
    k = linear.in_features
    a = x.detach().reshape(-1, k).to(torch.float32).cpu().numpy()
    w = linear.weight.detach().to(torch.float32).cpu().numpy()
    bias = (None if linear.bias is None
            else linear.bias.detach().to(torch.float32).cpu().numpy())
    return (a, w, bias, *quantize_symmetric(a, 8), *quantize_symmetric(w, 8))


def w8a8_output(c: np.ndarray, sa: np.ndarray, sw: np.ndarray,
                bias: np.ndarray | None) -> np.ndarray:
    """``y = C s_a s_w^T + b`` in float32 of the int32 product ``c`` (M, N)."""
    y = (c.astype(np.float32) * sa[:, None]) * sw[None, :]
    return y if bias is None else y + bias


def w8a8_error(a: np.ndarray, w: np.ndarray, bias: np.ndarray | None, sa: np.ndarray,
               sw: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(the error of ``y`` against the float linear ``a w^T + b`` in float64 and the W8A8
    bound (module docstring), both at the element nearest (or furthest past) its bound)."""
    k = a.shape[1]
    exact_y = a.astype(np.float64) @ w.T.astype(np.float64) + (0 if bias is None else bias)
    bound = (np.abs(a).sum(1)[:, None] * sw[None, :] / 2
             + sa[:, None] / 2 * np.abs(w).sum(1)[None, :] + k * sa[:, None] * sw / 4
             + 4 * _U * np.abs(exact_y) + _U * (0 if bias is None else np.abs(bias)))
    err = np.abs(y - exact_y)
    return worst(err, bound)
