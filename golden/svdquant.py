"""SVDQuant float reference: smoothing + 16-bit low-rank branch + W4A4 residual, one linear layer.

``Y = X W^T + b`` is approximated by (shared/docs/workloads.md, "SVDQuant")::

    X_hat = X / smooth                         smoothing, lambda_j = max|X_j|^a / max|W_j|^(1-a)
    Y ~ w4a4_gemm(Q(X_hat), Q(R)) + (X_hat down^T) up^T + b,    R = W * smooth - up down

``down`` (r, K) and ``up`` (N, r) come from the truncated float64 SVD of the smoothed weight and
are stored rounded to ``branch_dtype`` (bfloat16 by default, as FLUX.1 runs); the residual ``R``
is computed against the rounded branch, rounded to float32 and quantized INT4 per output row and
K-group. The INT4 path is bit-exact (:mod:`golden.svdquant_ops`); the branch runs in float32 on
``x / smooth`` and is a reference only (matmul order unspecified; a fused kernel using
``down / smooth`` on the raw x differs by rounding), so kernels are held to the layer output by a
tolerance. The SVD is torch float64 LAPACK on one thread, for run-to-run reproducibility.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import ml_dtypes
import numpy as np

from .arrays import ArrayLike, array_function
from .nvfp4 import NVFP4_GROUP, NVFP4Tensor, dequantize_nvfp4, nvfp4_gemm, quantize_nvfp4
from .svdquant_ops import (
    GELU_SHIFT,
    _check_group_size,
    _float_array,
    dequantize_int4,
    fold_act_shift,
    quantize_int4,
    w4a4_gemm,
)

__all__ = [
    "BRANCH_DTYPES",
    "DEFAULT_ALPHAS",
    "FORMATS",
    "GELU_SHIFT",
    "METHODS",
    "SVDQuantLinear",
    "dequantize_int4",
    "fold_act_shift",
    "quantize_int4",
    "quantize_linear",
    "relative_error",
    "smoothing_factors",
    "w4a4_gemm",
]

METHODS = ("naive", "smooth", "svdquant")
FORMATS = ("int4", "nvfp4")
BRANCH_DTYPES: dict[str, Any] = {
    "bfloat16": ml_dtypes.bfloat16,
    "float16": np.float16,
    "float32": np.float32,
}
DEFAULT_ALPHAS: tuple[float, ...] = tuple((i + 0.5) / 20 for i in range(20))
"""The smoothing-strength grid: 20 points 0.025, 0.075, ..., 0.975 in (0, 1)."""

_RANK_ALIGN = 16


@array_function("y", "y_ref")
def relative_error(y: ArrayLike, y_ref: ArrayLike) -> float:
    """``||y - y_ref||_F / ||y_ref||_F`` in float64 (``inf`` if ``y_ref`` is all zero)."""
    a = np.asarray(y, np.float64)
    b = np.asarray(y_ref, np.float64)
    den = float(np.linalg.norm(b))
    return float(np.linalg.norm(a - b)) / den if den > 0 else float("inf")


@array_function("calib_x", "weight")
def smoothing_factors(calib_x: ArrayLike, weight: ArrayLike, alpha: float) -> ArrayLike:
    """SmoothQuant factors ``lambda_j = max|X[:, j]|^alpha / max|W[:, j]|^(1 - alpha)``.

    Channels whose activation or weight maximum is 0 get 1; if any factor is NaN/Inf or leaves
    the float32 range, all factors are 1. Returns float32 (K,).
    """
    if not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"alpha={alpha!r} must lie in [0, 1]")
    x = _float_array("calib_x", calib_x, ndim=2)
    w = _float_array("weight", weight, ndim=2)
    if x.shape[1] != w.shape[1]:
        raise ValueError(f"calib_x has {x.shape[1]} channels, weight has K={w.shape[1]}")
    return _smooth_from_max(_col_absmax(x), _col_absmax(w), float(alpha))


def _col_absmax(a: np.ndarray) -> np.ndarray:
    return np.abs(a).max(axis=0) if a.shape[0] else np.zeros(a.shape[1])


def _smooth_from_max(xm: np.ndarray, wm: np.ndarray, alpha: float) -> np.ndarray:
    with np.errstate(all="ignore"):
        lam = xm**alpha / wm ** (1.0 - alpha)
    lam = np.where((xm == 0) | (wm == 0), 1.0, lam)
    with np.errstate(over="ignore"):
        lam32 = lam.astype(np.float32)
    if not (np.isfinite(lam32).all() and (lam32 > 0).all()):
        return np.ones(xm.shape[0], np.float32)
    return lam32


def _round_branch(a: np.ndarray, branch_dtype: str) -> np.ndarray:
    """RNE to ``branch_dtype``, held as float32 (every value exactly representable)."""
    with np.errstate(over="ignore"):
        r = np.asarray(a).astype(BRANCH_DTYPES[branch_dtype]).astype(np.float32)
    if not np.isfinite(r).all():
        raise ValueError(f"low-rank branch overflows branch_dtype={branch_dtype!r}")
    return r


def _pad_rank(a: np.ndarray, axis: int) -> np.ndarray:
    """Zero-pad ``axis`` (the rank axis) up to a multiple of 16."""
    extra = -a.shape[axis] % _RANK_ALIGN
    widths = [(0, 0)] * a.ndim
    widths[axis] = (0, extra)
    return np.pad(a, widths)


@dataclass(frozen=True, eq=False)
class SVDQuantLinear:
    """A quantized linear layer ``y = layer(x)``; its arrays are numpy, never mutated (the
    methods take numpy or torch activations and answer in their kind).

    ``qweight`` (N, K) int8 codes -8..7 and ``wscales`` (N, K/group_size) float32 quantize the
    residual of the smoothed weight. ``smooth`` (K,) float32: the kernel sees ``x / smooth``.
    ``lora_down`` (r, K) acts on ``x / smooth``, ``lora_up`` (N, r); both float32 arrays holding
    ``branch_dtype`` values. ``bias`` (N,) float32 or None. With ``act_unsigned`` (post-GELU
    inputs, x >= -GELU_SHIFT) the INT4 path quantizes ``(x + GELU_SHIFT) / smooth`` to 0..15 and
    :attr:`epilogue_bias` cancels the shift; the branch sees the unshifted ``x / smooth``.

    ``fmt="nvfp4"`` swaps the INT4 path for NVFP4 (:mod:`golden.nvfp4`): ``qweight`` holds uint8
    E2M1 codes, ``wscales`` (N, K/16) the FP8-E4M3 group scales as float32, ``wglobal`` the
    float32 tensor scale; activations get a dynamic per-call tensor scale; no ``act_unsigned``.
    """

    qweight: np.ndarray
    wscales: np.ndarray
    smooth: np.ndarray
    lora_down: np.ndarray
    lora_up: np.ndarray
    bias: np.ndarray | None = None
    group_size: int = 64
    act_unsigned: bool = False
    branch_dtype: str = "bfloat16"
    method: str = "svdquant"
    alpha: float | None = None
    fma: bool = field(default=False, repr=False)
    fmt: str = "int4"
    wglobal: float = 1.0

    def __post_init__(self) -> None:
        n, k = self.qweight.shape
        _check_group_size(self.group_size, k)
        if self.fmt not in FORMATS:
            raise ValueError(f"fmt={self.fmt!r} unknown; expected one of {list(FORMATS)}")
        if self.fmt == "nvfp4" and (self.group_size != NVFP4_GROUP or self.act_unsigned):
            raise ValueError(f"fmt='nvfp4' needs group_size={NVFP4_GROUP} and act_unsigned=False, "
                             f"got {self.group_size} and {self.act_unsigned}")
        lo, hi, kind = (0, 15, "u") if self.fmt == "nvfp4" else (-8, 7, "i")
        q = self.qweight
        if q.dtype.kind != kind or (q.size and (q.min() < lo or q.max() > hi)):
            got = f"{q.min()}..{q.max()}" if q.size else "empty"
            raise ValueError(f"qweight must hold {'un' if kind == 'u' else ''}signed integer "
                             f"codes {lo}..{hi} for fmt={self.fmt!r}, got {q.dtype} {got}")
        r = self.lora_down.shape[0]
        if self.branch_dtype not in BRANCH_DTYPES:
            raise ValueError(f"branch_dtype={self.branch_dtype!r} unknown; expected one of "
                             f"{list(BRANCH_DTYPES)}")
        expected = {
            "wscales": (n, k // self.group_size),
            "smooth": (k,),
            "lora_down": (r, k),
            "lora_up": (n, r),
        }
        for name, shape in expected.items():
            if getattr(self, name).shape != shape:
                raise ValueError(f"{name} has shape {getattr(self, name).shape}, expected {shape}")
        if self.bias is not None and self.bias.shape != (n,):
            raise ValueError(f"bias has shape {self.bias.shape}, expected ({n},)")

    def __repr__(self) -> str:
        return (f"SVDQuantLinear(N={self.out_features}, K={self.in_features}, rank={self.rank}, "
                f"group_size={self.group_size}, method={self.method!r}, alpha={self.alpha}, "
                f"act_unsigned={self.act_unsigned}, branch_dtype={self.branch_dtype!r}, "
                f"bias={self.bias is not None}, fma={self.fma}, fmt={self.fmt!r})")

    @property
    def out_features(self) -> int:
        return int(self.qweight.shape[0])

    @property
    def in_features(self) -> int:
        return int(self.qweight.shape[1])

    @property
    def rank(self) -> int:
        return int(self.lora_down.shape[0])

    @property
    def epilogue_bias(self) -> np.ndarray:
        """Float32 (N,) bias added before the store: ``bias`` with the GELU shift folded in."""
        b = np.zeros(self.out_features) if self.bias is None else self.bias.astype(np.float64)
        if self.act_unsigned:
            b = fold_act_shift(b, self._weight_deq(), GELU_SHIFT / self.smooth.astype(np.float64))
        return b.astype(np.float32)

    def _nvfp4_weight(self) -> NVFP4Tensor:
        return NVFP4Tensor(self.qweight, self.wscales.astype(ml_dtypes.float8_e4m3fn),
                           self.wglobal)

    def _weight_deq(self) -> np.ndarray:
        """Float64 (N, K) dequantized residual weight (smoothed domain)."""
        if self.fmt == "nvfp4":
            return dequantize_nvfp4(self._nvfp4_weight()).astype(np.float64)
        return dequantize_int4(self.qweight, self.wscales, self.group_size)

    @array_function("x")
    def quantize_input(self, x: ArrayLike) -> tuple[ArrayLike, ArrayLike] | NVFP4Tensor:
        """Codes and scales of the INT4 path for ``x`` (T, K), as the fused kernel makes them.

        float32: ``fl32(x / smooth)`` (signed) or ``fl32(fl32(x + GELU_SHIFT) / smooth)``;
        for ``fmt="nvfp4"`` the :class:`NVFP4Tensor` of ``fl32(x / smooth)``.
        """
        x32 = _float_array("x", x, ndim=2).astype(np.float32)
        if x32.shape[1] != self.in_features:
            raise ValueError(f"x has {x32.shape[1]} channels, layer has K={self.in_features}")
        if self.act_unsigned:
            if x32.size and x32.min() < -GELU_SHIFT:
                raise ValueError(f"x holds {x32.min()} < -{GELU_SHIFT}; act_unsigned layers take "
                                 "post-GELU activations")
            u = (x32 + np.float32(GELU_SHIFT)) / self.smooth
            return quantize_int4(u, self.group_size, signed=False)
        if self.fmt == "nvfp4":
            return quantize_nvfp4(x32 / self.smooth)
        return quantize_int4(x32 / self.smooth, self.group_size, signed=True)

    @array_function("x")
    def __call__(self, x: ArrayLike) -> ArrayLike:
        """Float32 output (..., N) for activations (..., K), quantized on the fly per token."""
        xa = _float_array("x", x, min_ndim=1)
        lead = xa.shape[:-1]
        x2 = xa.reshape(-1, xa.shape[-1]).astype(np.float32)
        qin = self.quantize_input(x2)
        if isinstance(qin, NVFP4Tensor):
            y = nvfp4_gemm(qin, self._nvfp4_weight())
        else:
            y = w4a4_gemm(qin[0], qin[1], self.qweight, self.wscales, self.group_size,
                          act_signed=not self.act_unsigned, fma=self.fma)
        if self.rank:
            y = y + ((x2 / self.smooth) @ self.lora_down.T) @ self.lora_up.T
        return (y + self.epilogue_bias).reshape(*lead, self.out_features)

    def effective_weight(self) -> np.ndarray:
        """The float64 (N, K) weight the layer stands for: ``(deq(Q) + up down) / smooth``."""
        wq = self._weight_deq()
        low = self.lora_up.astype(np.float64) @ self.lora_down.astype(np.float64)
        return (wq + low) / self.smooth.astype(np.float64)

    @array_function("A", "B")
    def with_lora(self, A: ArrayLike, B: ArrayLike,  # noqa: N803
                  strength: float = 1.0) -> SVDQuantLinear:
        """Attach an external LoRA ``y += strength * (x A^T) B^T`` without re-quantizing.

        ``A`` (r', K) acts on the raw x, so it is stored as ``A * smooth`` against ``x / smooth``.
        The branch becomes ``down = [pad16(down); pad16(A * smooth)]``,
        ``up = [pad16(up), pad16(strength * B)]`` (zero padding to multiples of 16, new values
        rounded to ``branch_dtype``); ``qweight``/``wscales`` are shared, untouched.
        """
        a = _float_array("A", A, ndim=2)
        b = _float_array("B", B, ndim=2)
        s = float(strength)
        if not np.isfinite(s):
            raise ValueError(f"strength={strength!r} must be finite")
        if a.shape[1] != self.in_features:
            raise ValueError(f"A has shape {a.shape}, expected (r, K={self.in_features})")
        if b.shape != (self.out_features, a.shape[0]):
            raise ValueError(f"B has shape {b.shape}, expected ({self.out_features}, {a.shape[0]})")
        a_hat = _round_branch(a * self.smooth.astype(np.float64), self.branch_dtype)
        b_s = _round_branch(s * b, self.branch_dtype)
        down = np.concatenate([_pad_rank(self.lora_down, 0), _pad_rank(a_hat, 0)], axis=0)
        up = np.concatenate([_pad_rank(self.lora_up, 1), _pad_rank(b_s, 1)], axis=1)
        return replace(self, lora_down=down, lora_up=up)


def _svd64(a: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Thin float64 SVD (torch LAPACK, one thread: reproducible, and fast on a loaded host)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        u, s, vh = torch.linalg.svd(torch.from_numpy(a), full_matrices=False)
    finally:
        torch.set_num_threads(threads)
    return u.numpy(), s.numpy(), vh.numpy()


def _build(
    w: np.ndarray, smooth: np.ndarray, rank: int, alpha: float | None, **kw: Any
) -> SVDQuantLinear:
    """Smoothed weight -> rounded rank-r SVD branch -> INT4 (or NVFP4) residual."""
    branch_dtype = kw["branch_dtype"]
    w_hat = w * smooth.astype(np.float64)
    n, k = w.shape
    if rank:
        u, s, vh = _svd64(w_hat)
        up = _round_branch(u[:, :rank] * s[:rank], branch_dtype)
        down = _round_branch(vh[:rank], branch_dtype)
        resid = w_hat - up.astype(np.float64) @ down.astype(np.float64)
    else:
        up, down, resid = np.zeros((n, 0), np.float32), np.zeros((0, k), np.float32), w_hat
    if kw["fmt"] == "nvfp4":
        q = quantize_nvfp4(resid)
        return SVDQuantLinear(q.codes, q.scales.astype(np.float32), smooth, down, up,
                              alpha=alpha, wglobal=q.global_scale, **kw)
    qw, sw = quantize_int4(resid, kw["group_size"], signed=True)
    return SVDQuantLinear(qw, sw, smooth, down, up, alpha=alpha, **kw)


@array_function("weight", "calib_x", "bias")
def quantize_linear(
    weight: ArrayLike,
    calib_x: ArrayLike,
    method: str = "svdquant",
    rank: int = 32,
    group_size: int = 64,
    bias: ArrayLike | None = None,
    *,
    alpha: float | None = None,
    alpha_grid: Sequence[float] = DEFAULT_ALPHAS,
    act_unsigned: bool = False,
    branch_dtype: str = "bfloat16",
    fma: bool = False,
    fmt: str = "int4",
) -> SVDQuantLinear:
    """Quantize ``y = x W^T + bias`` (weight (N, K), calib_x (T, K); numpy or torch).

    ``method``: "naive" (W4A4 only, smooth = 1, no branch), "smooth" (SmoothQuant + W4A4) or
    "svdquant" (smoothing + rank-``rank`` branch + W4A4 residual; ``rank`` is ignored by the
    other two). Smoothing strength: ``alpha`` if given, else the point of ``alpha_grid`` whose
    complete layer (branch included) has the lowest :func:`relative_error` against the float64
    ``calib_x @ W^T`` (first minimum on ties). ``act_unsigned``: post-GELU inputs, see
    :class:`SVDQuantLinear`. ``fma`` selects the :func:`w4a4_gemm` accumulation contract.
    ``fmt="nvfp4"`` quantizes weights and activations to NVFP4 instead (``group_size`` is then
    ignored: NVFP4 groups are 16).
    """
    if method not in METHODS:
        raise ValueError(f"method={method!r} unknown; expected one of {list(METHODS)}")
    if branch_dtype not in BRANCH_DTYPES:
        raise ValueError(f"branch_dtype={branch_dtype!r} unknown; expected one of "
                         f"{list(BRANCH_DTYPES)}")
    if fmt not in FORMATS:
        raise ValueError(f"fmt={fmt!r} unknown; expected one of {list(FORMATS)}")
    if fmt == "nvfp4":
        if act_unsigned:
            raise ValueError("act_unsigned=True is INT4-only; fmt='nvfp4' takes signed inputs")
        group_size = NVFP4_GROUP
    w = _float_array("weight", weight, ndim=2)
    x = _float_array("calib_x", calib_x, ndim=2)
    n, k = w.shape
    if x.shape[1] != k:
        raise ValueError(f"calib_x has {x.shape[1]} channels, weight has K={k}")
    if x.shape[0] == 0:
        raise ValueError("calib_x has 0 tokens; calibration needs at least one")
    gs = _check_group_size(group_size, k)
    if method == "svdquant" and (isinstance(rank, bool) or not isinstance(rank, int | np.integer)
                                 or not 0 <= rank <= min(n, k)):
        raise ValueError(f"rank={rank!r} must be an int in 0..min(N, K)={min(n, k)}")
    b = None
    if bias is not None:
        b = _float_array("bias", bias, ndim=1)
        if b.shape != (n,):
            raise ValueError(f"bias has shape {b.shape}, expected ({n},)")
        b = b.astype(np.float32)
    if act_unsigned and x.min() < -GELU_SHIFT:
        raise ValueError(f"calib_x holds {x.min()} < -{GELU_SHIFT}; act_unsigned needs "
                         "post-GELU activations")
    r = int(rank) if method == "svdquant" else 0
    if method == "naive":
        alphas: list[float | None] = [None]
    else:
        alphas = [alpha] if alpha is not None else [float(a) for a in alpha_grid]
        if not alphas:
            raise ValueError("alpha_grid is empty")
        for a in alphas:
            if not 0.0 <= a <= 1.0:  # type: ignore[operator]
                raise ValueError(f"alpha={a!r} must lie in [0, 1]")
    y_ref = x @ w.T
    xm, wm = _col_absmax(x), _col_absmax(w)
    best: tuple[float, SVDQuantLinear] | None = None
    for a in alphas:
        smooth = np.ones(k, np.float32) if a is None else _smooth_from_max(xm, wm, a)
        layer = _build(w, smooth, r, a, group_size=gs, act_unsigned=act_unsigned,
                       branch_dtype=branch_dtype, method=method, fma=fma, fmt=fmt)
        err = relative_error(layer(x), y_ref)
        if best is None or err < best[0]:
            best = (err, layer)
    assert best is not None
    return replace(best[1], bias=b)
