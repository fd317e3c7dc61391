"""COAT FP8 quantization in Triton, checked against :mod:`golden.coat` and :mod:`golden.fp8`.

* :func:`expand_quantize` / :func:`expand_dequantize`: dynamic range expansion on flattened
  groups of ``group_size`` (a short last group is implicitly zero-padded, like golden). Per group
  ``M = max|x|``, ``m = min{|x| : x != 0}``, ``c = sqrt(M m)``,
  ``k = clamp(floor(log2(F^2/2) / log2(M/m) * 16) / 16, 1/16, 64)`` (``k = 1`` when ``M == m``;
  ``k = c = scale = 1`` for an all-zero group), ``scale = (M/c)^k / F``,
  ``code = fp8(sign(x) (|x|/c)^k / scale)``; dequantize ``sign(q) |q scale|^(1/k) c``.
* :func:`quantize_per_group` / :func:`dequantize_per_group`: plain per-group FP8 along the last
  axis (``scale = M / F``, 1 for an all-zero group), COAT's 1 x 16 activation groups.
* :func:`fp8_round`: saturating round-to-nearest-even to the E4M3 (fn) / E5M2 grid.

Precision: the per-group scalars ``k, c, scale`` of the expansion are computed in float64 in the
kernel (one value per group, cheap) and stored as float32, so they equal golden's. The
elementwise powers are float32 (``exp2(k log2(|x|/c))``), so a code can differ from golden's by
one step where the float32 value lands next to a rounding tie. FP8 rounding is done in integer /
exact float32 arithmetic (no fp8 dtype inside the kernel): the codes are written as uint8 bit
patterns and returned as ``torch.float8_e4m3fn`` / ``torch.float8_e5m2`` tensors.
"""

from __future__ import annotations

from ._runtime import INTERPRETED  # first: sets TRITON_INTERPRET before triton is imported

# isort: split
from dataclasses import dataclass

import ml_dtypes
import numpy as np
import torch
import triton
import triton.language as tl

import golden.coat as _gc
import golden.fp8 as _gf

from .arrays import ArrayLike, tensor_function

__all__ = ["ExpandedFp8Tensor", "GroupFp8Tensor", "dequantize_per_group", "expand_dequantize",
           "expand_quantize", "fp8_round", "quantize_per_group"]

_BACKENDS = ("triton", "torch")
_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
#: fmt -> (mantissa bits, min normal exponent, max finite, torch dtype, ml_dtypes dtype)
_FMT = {
    "e4m3": (3, -6, 448.0, torch.float8_e4m3fn, ml_dtypes.float8_e4m3fn),
    "e5m2": (2, -14, 57344.0, torch.float8_e5m2, ml_dtypes.float8_e5m2),
}
_MAX_BLOCK = 8192  # largest group one program holds (triton backend)
_TILE = 4096  # elements per program: ROWS groups x BLOCK


@triton.jit
def _fp8_encode(mag, neg, MBITS: tl.constexpr, EMIN: tl.constexpr, FMAX: tl.constexpr):
    """int32 fp8 bit pattern of float32 ``mag >= 0`` (RNE, saturating), sign bit from ``neg``.

    ``e = max(floor(log2 a), EMIN)``; ``s = a 2^(MBITS-e)`` is exact (power-of-two scaling)
    and lies in ``[0, 2^(MBITS+1))``; ``n = rne(s)`` by an exact integer/fraction split; the
    code is ``(e - EMIN) 2^MBITS + n``, which also covers subnormals and the carry into the next
    binade.
    """
    a = tl.minimum(mag, FMAX)
    e = ((a.to(tl.int32, bitcast=True) >> 23) & 0xFF) - 127
    e = tl.maximum(e, EMIN)
    s = a * ((MBITS - e + 127) << 23).to(tl.float32, bitcast=True)
    n = s.to(tl.int32)
    frac = s - n.to(tl.float32)
    n += ((frac > 0.5) | ((frac == 0.5) & ((n & 1) == 1))).to(tl.int32)
    return ((e - EMIN) << MBITS) + n + tl.where(neg, 128, 0)


@triton.jit
def _fp8_decode(code, MBITS: tl.constexpr, EMIN: tl.constexpr):
    """float32 value of an fp8 bit pattern (finite codes): ``n 2^(e - MBITS)``."""
    code = code.to(tl.int32) & 0xFF
    ef = (code & 0x7F) >> MBITS
    n = (code & ((1 << MBITS) - 1)) + tl.where(ef > 0, 1 << MBITS, 0)
    e = tl.maximum(ef, 1) - 1 + EMIN
    v = n.to(tl.float32) * ((e - MBITS + 127) << 23).to(tl.float32, bitcast=True)
    sign = (code >> 7) << 31  # sign bit set by bits (-0.0 too; negation may give +0.0)
    return (v.to(tl.int32, bitcast=True) | sign).to(tl.float32, bitcast=True)


@triton.jit
def _tile(numel, n_groups, G, ROWS: tl.constexpr, BLOCK: tl.constexpr):
    """This program's ``ROWS`` groups: group ids, element offsets ``(ROWS, BLOCK)``, mask."""
    rows = tl.program_id(0) * ROWS + tl.arange(0, ROWS)
    cols = tl.arange(0, BLOCK)[None, :]
    offs = rows[:, None].to(tl.int64) * G + cols
    return rows, offs, (rows[:, None] < n_groups) & (cols < G) & (offs < numel)


@triton.jit
def _round_kernel(x_ptr, c_ptr, numel, MBITS: tl.constexpr, EMIN: tl.constexpr,
                  FMAX: tl.constexpr, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    x = tl.load(x_ptr + offs, mask=offs < numel, other=0.0).to(tl.float32)
    neg = (x.to(tl.int32, bitcast=True) >> 31) != 0
    tl.store(c_ptr + offs, _fp8_encode(tl.abs(x), neg, MBITS, EMIN, FMAX).to(tl.uint8),
             mask=offs < numel)


@triton.jit
def _group_quant_kernel(x_ptr, c_ptr, s_ptr, numel, n_groups, G, MBITS: tl.constexpr,
                        EMIN: tl.constexpr, FMAX: tl.constexpr, ROWS: tl.constexpr,
                        BLOCK: tl.constexpr):
    rows, offs, mask = _tile(numel, n_groups, G, ROWS, BLOCK)
    x = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    a = tl.abs(x)
    absmax = tl.max(a, axis=1)
    fmax = tl.full(absmax.shape, FMAX, tl.float32)  # div_rn does not broadcast
    scale = tl.where(absmax > 0, tl.math.div_rn(absmax, fmax), 1.0)
    y = tl.math.div_rn(a, tl.broadcast_to(scale[:, None], a.shape))
    neg = (x.to(tl.int32, bitcast=True) >> 31) != 0
    tl.store(c_ptr + offs, _fp8_encode(y, neg, MBITS, EMIN, FMAX).to(tl.uint8), mask=mask)
    tl.store(s_ptr + rows, scale, mask=rows < n_groups)


@triton.jit
def _expand_quant_kernel(x_ptr, c_ptr, s_ptr, k_ptr, ctr_ptr, numel, n_groups, G,
                         HALF_F2: tl.constexpr, K_MIN: tl.constexpr, K_MAX: tl.constexpr,
                         MBITS: tl.constexpr, EMIN: tl.constexpr, FMAX: tl.constexpr,
                         ROWS: tl.constexpr, BLOCK: tl.constexpr):
    rows, offs, mask = _tile(numel, n_groups, G, ROWS, BLOCK)
    x = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    a = tl.abs(x)
    # per-group statistics (exact in float32), then k, c, scale in float64 like golden
    big_m = tl.max(a, axis=1).to(tl.float64)
    small_m = tl.min(tl.where(a > 0, a, float("inf")), axis=1).to(tl.float64)
    nonzero = big_m > 0
    spread = nonzero & (big_m > small_m)
    ratio = tl.where(spread, big_m / tl.where(spread, small_m, 1.0), 2.0)
    # F^2 / 2 is exact in float32; its log2 is taken in float64 here, not passed in (a float
    # constant would be narrowed to float32 by the compiler)
    log2_half_f2 = tl.log2(tl.full(ratio.shape, HALF_F2, tl.float64))
    k_raw = tl.floor(log2_half_f2 / tl.log2(ratio) * 16.0) / 16.0
    k = tl.where(spread, tl.minimum(tl.maximum(k_raw, K_MIN), K_MAX), 1.0).to(tl.float32)
    c = tl.where(nonzero, tl.sqrt(big_m * tl.where(nonzero, small_m, 1.0)), 1.0)
    c = c.to(tl.float32)
    lg = tl.log2(tl.where(nonzero, big_m / c.to(tl.float64), 1.0))
    scale = tl.where(nonzero, tl.exp2(k.to(tl.float64) * lg) / FMAX, 1.0).to(tl.float32)
    # elementwise |x'| / scale = (|x| / c)^k / scale. k > 1/16 bounds |x| / c to 2^+-67, so
    # float32 holds it; a group spanning more than 2^133 (only with float32 subnormals beside
    # huge values) sends its whole program down a float64 path instead.
    pos = a > 0
    if tl.min(k, axis=0) > K_MIN:
        cb = tl.broadcast_to(c[:, None], a.shape)
        t = tl.math.div_rn(tl.where(pos, a, cb), cb)  # zeros/padding: t = 1
        p = tl.where(pos, tl.exp2(k[:, None] * tl.log2(t)), 0.0)
        y = tl.math.div_rn(p, tl.broadcast_to(scale[:, None], a.shape))
    else:
        c64 = c.to(tl.float64)[:, None]
        t64 = tl.where(pos, a.to(tl.float64), c64) / c64
        p64 = tl.where(pos, tl.exp2(k.to(tl.float64)[:, None] * tl.log2(t64)), 0.0)
        y = (p64 / scale.to(tl.float64)[:, None]).to(tl.float32)
    tl.store(c_ptr + offs, _fp8_encode(y, x < 0, MBITS, EMIN, FMAX).to(tl.uint8), mask=mask)
    rmask = rows < n_groups
    tl.store(s_ptr + rows, scale, mask=rmask)
    tl.store(k_ptr + rows, k, mask=rmask)
    tl.store(ctr_ptr + rows, c, mask=rmask)


@triton.jit
def _dequant_kernel(c_ptr, s_ptr, k_ptr, ctr_ptr, o_ptr, numel, n_groups, G,
                    EXPANDED: tl.constexpr, K_MIN: tl.constexpr, MBITS: tl.constexpr,
                    EMIN: tl.constexpr, ROWS: tl.constexpr, BLOCK: tl.constexpr):
    rows, offs, mask = _tile(numel, n_groups, G, ROWS, BLOCK)
    rmask = rows < n_groups
    v = _fp8_decode(tl.load(c_ptr + offs, mask=mask, other=0), MBITS, EMIN)
    scale = tl.load(s_ptr + rows, mask=rmask, other=1.0)
    w = v * scale[:, None]
    if EXPANDED:
        k = tl.load(k_ptr + rows, mask=rmask, other=1.0)
        c = tl.load(ctr_ptr + rows, mask=rmask, other=1.0)
        aw = tl.abs(w)
        nz = aw > 0
        if tl.min(k, axis=0) > K_MIN:  # float32 path, see _expand_quant_kernel
            r = tl.where(nz, tl.exp2(tl.log2(tl.where(nz, aw, 1.0)) / k[:, None]), 0.0)
            r = r * c[:, None]
        else:
            w64 = tl.abs(v.to(tl.float64) * scale.to(tl.float64)[:, None])
            r64 = tl.exp2(tl.log2(tl.where(nz, w64, 1.0)) / k.to(tl.float64)[:, None])
            r = tl.where(nz, r64 * c.to(tl.float64)[:, None], 0.0).to(tl.float32)
        w = tl.where(w < 0, -r, r)
    tl.store(o_ptr + offs, w, mask=mask)


@dataclass(frozen=True)
class ExpandedFp8Tensor:
    """COAT range-expanded FP8 (torch twin of :class:`golden.coat.ExpandedFp8`).

    ``codes``: fp8 tensor (``torch.float8_e4m3fn`` / ``float8_e5m2``) of the input's shape;
    ``scale``, ``k``, ``centre``: float32 ``(n_groups,)``.
    """

    codes: torch.Tensor
    scale: torch.Tensor
    k: torch.Tensor
    centre: torch.Tensor
    group_size: int
    fmt: str

    def to_golden(self) -> _gc.ExpandedFp8:
        """The same data as golden's numpy/ml_dtypes dataclass."""
        return _gc.ExpandedFp8(_np_codes(self.codes, self.fmt), *(
            t.detach().cpu().numpy() for t in (self.scale, self.k, self.centre)),
            self.group_size, self.fmt)


@dataclass(frozen=True)
class GroupFp8Tensor:
    """Plain per-group FP8 along the last axis (torch twin of :class:`golden.fp8.Fp8Quantized`):
    ``x ~= codes * scales`` with float32 ``scales`` of shape ``(..., L // group_size)``."""

    codes: torch.Tensor
    scales: torch.Tensor
    group_size: int
    fmt: str

    def to_golden(self) -> _gf.Fp8Quantized:
        return _gf.Fp8Quantized(_np_codes(self.codes, self.fmt),
                                self.scales.detach().cpu().numpy(), self.fmt, self.group_size)


def _np_codes(codes: torch.Tensor, fmt: str) -> np.ndarray:
    return codes.detach().view(torch.uint8).cpu().numpy().view(_FMT[fmt][4])


def _from_golden(q, backend: str):
    """golden's numpy dataclass as the torch twin, on the device ``backend`` runs on."""
    if q.fmt not in _FMT or np.asarray(q.codes).dtype != _FMT[q.fmt][4]:
        raise ValueError(f"q.codes must be {q.fmt!r} ml_dtypes codes, got {q.codes.dtype}")
    dev = "cuda" if backend == "triton" and not INTERPRETED else "cpu"
    bits = torch.from_numpy(np.ascontiguousarray(q.codes).view(np.uint8).copy())
    codes = bits.to(dev).view(_FMT[q.fmt][3])
    f32 = [torch.from_numpy(np.asarray(getattr(q, n), np.float32)).to(dev)
           for n in ("scale", "k", "centre", "scales") if hasattr(q, n)]
    if isinstance(q, _gc.ExpandedFp8):
        return ExpandedFp8Tensor(codes, *f32, int(q.group_size), q.fmt)
    return GroupFp8Tensor(codes, *f32, int(q.group_size), q.fmt)


def _check_common(x: object, fmt: str, backend: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if x.dtype not in _DTYPES:
        raise ValueError(f"x must be float32, float16 or bfloat16, got {x.dtype}")
    if not isinstance(fmt, str) or fmt not in _FMT:
        raise ValueError(f"unknown fmt {fmt!r}: expected one of {sorted(_FMT)}")
    _check_backend(backend, x.device)
    finite = torch.isfinite(x)
    if not bool(finite.all()):
        raise ValueError(f"x holds a non-finite value ({x[~finite][0].item()})")
    return x


def _check_backend(backend: str, device: torch.device) -> None:
    if backend not in _BACKENDS:
        raise ValueError(f"backend must be one of {_BACKENDS}, got {backend!r}")
    if backend == "triton" and not INTERPRETED and device.type != "cuda":
        raise ValueError(f"backend='triton' needs CUDA tensors when not interpreted, got {device}")


def _check_group(group_size: object, backend: str) -> int:
    if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size <= 0:
        raise ValueError(f"group_size must be a positive integer, got {group_size!r}")
    if backend == "triton" and group_size > _MAX_BLOCK:
        raise ValueError(f"group_size must be <= {_MAX_BLOCK} for backend='triton', "
                         f"got {group_size}")
    return group_size


def _tiles(group_size: int, n_groups: int) -> tuple[int, int, tuple[int]]:
    block = triton.next_power_of_2(group_size)
    rows = max(1, _TILE // block)
    return rows, block, (triton.cdiv(n_groups, rows),)


@tensor_function("x")
def fp8_round(x: ArrayLike, fmt: str = "e4m3", *, backend: str = "triton") -> ArrayLike:
    """``x`` rounded to nearest-even on the ``fmt`` grid, ``|x| > max`` saturating to ``+-max``;
    returns a ``torch.float8_*`` tensor, or an ``ml_dtypes`` array for array input (golden:
    ``golden.fp8.fp8_round``, saturate)."""
    _check_common(x, fmt, backend)
    mbits, emin, fmax, tdtype, _ = _FMT[fmt]
    if backend == "torch":
        return x.float().clamp(-fmax, fmax).to(tdtype)
    xc = x.contiguous()
    out = torch.empty(x.shape, dtype=torch.uint8, device=x.device)
    if xc.numel():
        _round_kernel[(triton.cdiv(xc.numel(), _TILE),)](xc, out, xc.numel(), MBITS=mbits,
                                                          EMIN=emin, FMAX=fmax, BLOCK=_TILE)
    return out.view(tdtype)


@tensor_function("x")
def quantize_per_group(x: ArrayLike, group_size: int = 16, fmt: str = "e4m3", *,
                       backend: str = "triton") -> GroupFp8Tensor:
    """Per-group FP8 along the last axis (must be a multiple of ``group_size``):
    ``scale = max|x_g| / F`` (float32; 1 if all zero), ``code = fp8(x / scale)``."""
    _check_common(x, fmt, backend)
    g = _check_group(group_size, backend)
    if x.dim() == 0:
        raise ValueError(f"x must have at least one axis, got shape {tuple(x.shape)}")
    if x.shape[-1] % g:
        raise ValueError(f"group_size {g} does not divide the last axis of x "
                         f"(shape {tuple(x.shape)})")
    mbits, emin, fmax, tdtype, _ = _FMT[fmt]
    sshape = (*x.shape[:-1], x.shape[-1] // g)
    if backend == "torch":
        grouped = x.float().reshape(*sshape, g)
        absmax = grouped.abs().amax(-1)
        scales = torch.where(absmax > 0, absmax / torch.tensor(fmax), torch.ones_like(absmax))
        codes = (grouped / scales[..., None]).clamp(-fmax, fmax).to(tdtype).reshape(x.shape)
        return GroupFp8Tensor(codes, scales, g, fmt)
    xc = x.contiguous()
    codes = torch.empty(x.shape, dtype=torch.uint8, device=x.device)
    scales = torch.empty(sshape, dtype=torch.float32, device=x.device)
    n_groups = xc.numel() // g
    if n_groups:
        rows, block, grid = _tiles(g, n_groups)
        _group_quant_kernel[grid](xc, codes, scales, xc.numel(), n_groups, g, MBITS=mbits,
                                  EMIN=emin, FMAX=fmax, ROWS=rows, BLOCK=block)
    return GroupFp8Tensor(codes.view(tdtype), scales, g, fmt)


@tensor_function("x")
def expand_quantize(x: ArrayLike, group_size: int = 128, fmt: str = "e4m3", *,
                    backend: str = "triton") -> ExpandedFp8Tensor:
    """COAT dynamic-range-expanded FP8 of ``x`` in flattened groups (see module doc)."""
    _check_common(x, fmt, backend)
    g = _check_group(group_size, backend)
    mbits, emin, fmax, tdtype, _ = _FMT[fmt]
    n_groups = -(-x.numel() // g)
    if backend == "torch":
        return _expand_torch(x, g, fmt)
    xc = x.contiguous()
    codes = torch.empty(x.shape, dtype=torch.uint8, device=x.device)
    scale, k, c = (torch.empty(n_groups, dtype=torch.float32, device=x.device) for _ in "skc")
    if n_groups:
        rows, block, grid = _tiles(g, n_groups)
        _expand_quant_kernel[grid](
            xc, codes, scale, k, c, xc.numel(), n_groups, g,
            HALF_F2=fmax * fmax / 2.0, K_MIN=_gc.K_MIN, K_MAX=_gc.K_MAX,
            MBITS=mbits, EMIN=emin, FMAX=fmax, ROWS=rows, BLOCK=block)
    return ExpandedFp8Tensor(codes.view(tdtype), scale, k, c, g, fmt)


def _padded_groups(t: torch.Tensor, g: int) -> torch.Tensor:
    """float64 ``(n_groups, g)`` view of ``t`` flattened and zero-padded (golden's grouping)."""
    flat = t.detach().float().reshape(-1).double()
    n_groups = -(-flat.numel() // g)
    return torch.nn.functional.pad(flat, (0, n_groups * g - flat.numel())).view(n_groups, g)


def _expand_torch(x: torch.Tensor, g: int, fmt: str) -> ExpandedFp8Tensor:
    """golden's float64 math in torch."""
    fmax, tdtype = _FMT[fmt][2], _FMT[fmt][3]
    grouped = _padded_groups(x, g)
    mag = grouped.abs()
    big_m, small_m = mag.amax(1), torch.where(mag > 0, mag, torch.inf).amin(1)
    nonzero, one = big_m > 0, torch.ones_like(big_m)
    spread = nonzero & (big_m > small_m)
    ratio = torch.where(spread, big_m / torch.where(spread, small_m, one), 2 * one)
    k_raw = torch.floor(np.log2(fmax * fmax / 2.0) / torch.log2(ratio) * 16.0) / 16.0
    k = torch.where(spread, k_raw.clamp(_gc.K_MIN, _gc.K_MAX), one).float()
    c = torch.where(nonzero, torch.sqrt(big_m * torch.where(nonzero, small_m, one)), one).float()
    scale = torch.where(nonzero, torch.where(nonzero, big_m / c.double(), one) ** k / fmax, one)
    k64, c64, s64 = (t.double()[:, None] for t in (k, c, scale.float()))
    y = (torch.sign(grouped) * (mag / c64) ** k64 / s64).reshape(-1)[: x.numel()].float()
    codes = y.clamp(-fmax, fmax).to(tdtype).reshape(x.shape)
    return ExpandedFp8Tensor(codes, scale.float(), k, c, g, fmt)


def _check_codes(q, n_groups: int, scale_names: tuple[str, ...]) -> None:
    if q.fmt not in _FMT or q.codes.dtype != _FMT[q.fmt][3]:
        raise ValueError(f"q.codes dtype {q.codes.dtype} does not match fmt {q.fmt!r}")
    if not bool(torch.isfinite(q.codes.float()).all()):
        raise ValueError("q.codes holds a NaN/Inf code")
    for name in scale_names:
        t = getattr(q, name)
        if t.dtype != torch.float32 or t.numel() != n_groups or t.device != q.codes.device:
            raise ValueError(f"q.{name} must be float32 with {n_groups} values on "
                             f"{q.codes.device}, got {t.dtype} {tuple(t.shape)} on {t.device}")
        if not bool(torch.isfinite(t).all()) or bool((t <= 0).any()):
            raise ValueError(f"q.{name} must be finite and > 0")


def _dequant(q, n_groups: int, expanded: bool) -> torch.Tensor:
    codes = q.codes.contiguous().view(torch.uint8)
    out = torch.empty(q.codes.shape, dtype=torch.float32, device=codes.device)
    scale = q.scale if expanded else q.scales
    if n_groups:
        rows, block, grid = _tiles(q.group_size, n_groups)
        k, c = (q.k, q.centre) if expanded else (scale, scale)
        _dequant_kernel[grid](codes, scale.contiguous(), k.contiguous(), c.contiguous(), out,
                              codes.numel(), n_groups, q.group_size, EXPANDED=expanded,
                              K_MIN=_gc.K_MIN, MBITS=_FMT[q.fmt][0], EMIN=_FMT[q.fmt][1],
                              ROWS=rows, BLOCK=block)
    return out


def expand_dequantize(q: ExpandedFp8Tensor | _gc.ExpandedFp8, *,
                      backend: str = "triton") -> torch.Tensor:
    """float32 ``sign(q) |q scale|^(1/k) c`` per group (golden's object is accepted too)."""
    if isinstance(q, _gc.ExpandedFp8):
        q = _from_golden(q, backend)
    if not isinstance(q, ExpandedFp8Tensor):
        raise ValueError(f"q must be an ExpandedFp8Tensor, got {type(q).__name__}")
    _check_backend(backend, q.codes.device)
    g = _check_group(q.group_size, backend)
    n_groups = -(-q.codes.numel() // g)
    _check_codes(q, n_groups, ("scale", "k", "centre"))
    if backend == "triton":
        return _dequant(q, n_groups, True)
    vals = _padded_groups(q.codes, g)
    k, c, s = (t.double()[:, None] for t in (q.k, q.centre, q.scale))
    out = torch.sign(vals) * (vals * s).abs() ** (1.0 / k) * c
    return out.reshape(-1)[: q.codes.numel()].reshape(q.codes.shape).float()


def dequantize_per_group(q: GroupFp8Tensor | _gf.Fp8Quantized, *,
                         backend: str = "triton") -> torch.Tensor:
    """float32 ``codes * scales`` (group scales repeated along the last axis)."""
    if isinstance(q, _gf.Fp8Quantized) and q.group_size is not None:
        q = _from_golden(q, backend)
    if not isinstance(q, GroupFp8Tensor):
        raise ValueError(f"q must be a GroupFp8Tensor, got {type(q).__name__}")
    _check_backend(backend, q.codes.device)
    g = _check_group(q.group_size, backend)
    if q.codes.dim() == 0 or q.codes.shape[-1] % g:
        raise ValueError(f"group_size {g} does not divide the last axis of q.codes "
                         f"(shape {tuple(q.codes.shape)})")
    n_groups = q.codes.numel() // g
    _check_codes(q, n_groups, ("scales",))
    if backend == "triton":
        return _dequant(q, n_groups, False)
    grouped = q.codes.float().reshape(*q.codes.shape[:-1], -1, g)
    return (grouped * q.scales.reshape(*grouped.shape[:-1], 1)).reshape(q.codes.shape)
