"""SVDQuant W4A4 + low-rank branch in Triton, held to golden.svdquant_ops and golden.nvfp4.

A quantized layer computes ``y = dequant(Q(x / smooth) . Q_W) + (x . down'^T) . up^T + bias``
with ``down' = lora_down / smooth`` (so the branch reads the raw ``x``), in two fused kernels
(shared/docs/workloads.md, SVDQuant, "Fused kernels"):

* :func:`quantize_act` - one pass over ``x``: the int4 codes/scales of ``x / smooth`` (bit-exact
  :func:`golden.svdquant_ops.quantize_int4`) and ``lora_act = x . down'^T`` (float32).
* :func:`w4a4_gemm_lora` - the group-scaled int4 GEMM (bit-exact
  :func:`golden.svdquant_ops.w4a4_gemm`, ``fma=False``) with ``lora_act . lora_up^T`` and the
  bias added in the epilogue before the single write of ``y``.

:func:`quantize_act_nvfp4` / :func:`nvfp4_gemm_lora` are the NVFP4 counterparts (bit-exact
:func:`golden.nvfp4.quantize_nvfp4` / :func:`golden.nvfp4.nvfp4_gemm`) and :func:`w4a4_linear`
runs a ``golden.svdquant.SVDQuantLinear`` layer of either format.

Packed int4 (:func:`pack_int4`): two codes per uint8, the **low nibble holds the even k**, the
high nibble ``k + 1``; signed codes are two's-complement nibbles. Only ``group_size=64`` is
supported for INT4 (the K step of both kernels is one group; it is what SVDQuant uses); NVFP4
groups are 16. Every entry point validates its inputs (``ValueError`` naming the argument and
value) before any launch; ``backend="triton"`` runs the kernels (the interpreter without a GPU,
see :mod:`sw`), ``backend="torch"`` the same float32 operations in plain torch.
"""

from __future__ import annotations

from ._runtime import INTERPRETED  # first: sets TRITON_INTERPRET before triton is imported

# isort: split
import numpy as np
import torch
import triton

from golden.svdquant import GELU_SHIFT, SVDQuantLinear

from . import svdquant_kernels as _k
from .arrays import ArrayLike, tensor_function

__all__ = [
    "GROUP_SIZE",
    "NVFP4_GROUP",
    "nvfp4_gemm_lora",
    "pack_int4",
    "quantize_act",
    "quantize_act_nvfp4",
    "unpack_int4",
    "w4a4_gemm_lora",
    "w4a4_linear",
]

GROUP_SIZE = 64
"""The only INT4 group size the kernels support (one group per K step)."""
NVFP4_GROUP = 16
_BACKENDS = ("triton", "torch")
_RANK_ALIGN = 16


# --------------------------------------------------------------------------- validation


def _tensor(name: str, t: object, dtype: torch.dtype,
            shape: tuple[int | None, ...]) -> torch.Tensor:
    """``t`` checked to be a tensor of ``dtype`` and ``shape`` (``None`` matches any size)."""
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dtype != dtype:
        raise ValueError(f"{name} must be {dtype}, got {t.dtype}")
    if t.dim() != len(shape) or any(
            w is not None and w != s for w, s in zip(shape, t.shape, strict=True)):
        want = "(" + ", ".join("*" if w is None else str(w) for w in shape)
        want += ",)" if len(shape) == 1 else ")"
        raise ValueError(f"{name} must have shape {want}, got {tuple(t.shape)}")
    return t


def _finite(name: str, t: torch.Tensor) -> None:
    bad = ~torch.isfinite(t)
    if bad.any():
        idx = tuple(int(i) for i in torch.nonzero(bad)[0])
        raise ValueError(f"{name} holds {t[idx].item()} at index {idx}; inputs must be finite")


def _check_options(backend: str, group_size: object, **blocks: int) -> None:
    if backend not in _BACKENDS:
        raise ValueError(f"backend must be one of {_BACKENDS}, got {backend!r}")
    if group_size is not None and (type(group_size) is not int or group_size != GROUP_SIZE):
        raise ValueError(f"group_size must be {GROUP_SIZE} (the only group size these kernels "
                         f"support), got {group_size!r}")
    for name, v in blocks.items():
        if isinstance(v, bool) or not isinstance(v, int) or v < 16 or v & (v - 1):
            raise ValueError(f"{name} must be a power of two >= 16, got {v!r}")


def _same_device(backend: str, **tensors: torch.Tensor | None) -> None:
    devs = {n: t.device for n, t in tensors.items() if t is not None}
    if len(set(devs.values())) > 1:
        raise ValueError(f"tensors on different devices: {devs}")
    dev = next(iter(devs.values()))
    if backend == "triton" and not INTERPRETED and dev.type != "cuda":
        raise ValueError(f"backend='triton' on a GPU needs CUDA tensors, got device {dev}")


def _check_rank(name: str, r: int) -> None:
    if r % _RANK_ALIGN:
        raise ValueError(f"{name} has LoRA rank {r}, not a multiple of {_RANK_ALIGN}")


def _check_act(x: torch.Tensor, smooth: torch.Tensor, lora_down: torch.Tensor,
               shift: float = 0.0) -> torch.Tensor:
    """Finite x, smooth > 0, finite lora_down, x >= -shift, and x / smooth within float32.

    Returns the per-column ``max|x + shift|`` (one pass over x)."""
    _finite("smooth", smooth)
    if smooth.numel() and smooth.min() <= 0:
        j = int(torch.argmin(smooth))
        raise ValueError(f"smooth holds {smooth[j].item()} at index {j}; must be > 0")
    _finite("lora_down", lora_down)
    if x.shape[0] == 0:
        return torch.zeros_like(smooth)
    colmax = x.abs().amax(dim=0)
    if not torch.isfinite(colmax).all():
        _finite("x", x)
    if shift:
        if x.min() < -shift:
            raise ValueError(f"x holds {x.min().item()} < -{shift}; act_unsigned takes "
                             "post-GELU activations")
        colmax = (x + shift).abs().amax(dim=0)
    ratio = colmax / smooth
    if not torch.isfinite(ratio).all():
        j = int(torch.nonzero(~torch.isfinite(ratio))[0, 0])
        raise ValueError(f"x / smooth overflows float32 in column {j}: max|x| "
                         f"{colmax[j].item()}, smooth {smooth[j].item()}")
    return colmax


def _check_gemm(backend, codes_x, sx, codes_w, sw_, lora_act, lora_up, bias, group: int):
    """Shape/dtype checks shared by the two GEMMs; returns (M, N, K, r)."""
    codes_x = _tensor("codes_x", codes_x, torch.uint8, (None, None))
    m, k = codes_x.shape[0], 2 * codes_x.shape[1]
    if k % group:
        raise ValueError(f"K={k} (2 * codes_x.shape[1]) is not divisible by group_size={group}")
    codes_w = _tensor("codes_w", codes_w, torch.uint8, (None, k // 2))
    n = codes_w.shape[0]
    _tensor("sx", sx, torch.float32, (m, k // group))
    _tensor("sw", sw_, torch.float32, (n, k // group))
    _tensor("lora_act", lora_act, torch.float32, (m, None))
    r = lora_act.shape[1]
    _check_rank("lora_act", r)
    _tensor("lora_up", lora_up, torch.float32, (n, r))
    if bias is not None:
        _tensor("bias", bias, torch.float32, (n,))
    _same_device(backend, codes_x=codes_x, sx=sx, codes_w=codes_w, sw=sw_, lora_act=lora_act,
                 lora_up=lora_up, bias=bias)
    for name, t in (("sx", sx), ("sw", sw_), ("lora_act", lora_act), ("lora_up", lora_up),
                    ("bias", bias)):
        if t is not None:
            _finite(name, t)
    return m, n, k, r


# --------------------------------------------------------------------------- packing


@tensor_function("codes")
def pack_int4(codes: ArrayLike) -> ArrayLike:
    """int4 codes, int8 or uint8 (..., K) with K even -> uint8 (..., K/2).

    Signed codes are -8..7, unsigned 0..15 (int8 or uint8, as golden returns them); values
    -8..15 are accepted and only the low nibble is stored, so :func:`unpack_int4` needs the
    signedness back. ``out[..., j] = (codes[..., 2j] & 15) | (codes[..., 2j+1] & 15) << 4``:
    the low nibble holds the even k.
    """
    if not isinstance(codes, torch.Tensor):
        raise ValueError(f"codes must be a torch.Tensor, got {type(codes).__name__}")
    if codes.dtype not in (torch.int8, torch.uint8):
        raise ValueError(f"codes must be int8 or uint8, got {codes.dtype}")
    if codes.dim() < 1 or codes.shape[-1] % 2:
        raise ValueError(f"codes must have an even last dimension, got shape {tuple(codes.shape)}")
    c = codes.to(torch.int16)
    if c.numel() and (c.min() < -8 or c.max() > 15):
        bad = c.min() if c.min() < -8 else c.max()
        raise ValueError(f"codes holds {bad.item()}, outside -8..15")
    return _k.pack_torch(codes)


@tensor_function("packed")
def unpack_int4(packed: ArrayLike, *, signed: bool = True) -> ArrayLike:
    """Inverse of :func:`pack_int4`: uint8 (..., K/2) -> int8 -8..7 (``signed``) or uint8 0..15."""
    if not isinstance(packed, torch.Tensor):
        raise ValueError(f"packed must be a torch.Tensor, got {type(packed).__name__}")
    if packed.dtype != torch.uint8 or packed.dim() < 1:
        raise ValueError(f"packed must be uint8 of rank >= 1, got {packed.dtype} "
                         f"{tuple(packed.shape)}")
    return _k.unpack_torch(packed, signed)


# --------------------------------------------------------------------------- INT4


@tensor_function("x", "smooth", "lora_down")
def quantize_act(
    x: ArrayLike,
    smooth: ArrayLike,
    lora_down: ArrayLike,
    group_size: int = GROUP_SIZE,
    *,
    backend: str = "triton",
    act_unsigned: bool = False,
    block_m: int = 64,
) -> tuple[ArrayLike, ArrayLike, ArrayLike]:
    """Fused INT4 activation quantization + lora_down, one pass over ``x`` (M, K) float32.

    ``u = fl32(x / smooth)`` (``act_unsigned``: ``fl32(fl32(x + GELU_SHIFT) / smooth)``); per row
    and 64-group ``s = fl32(absmax(u) / qmax)`` (qmax 7, or 15), ``s = 1`` where 0, codes
    ``clamp(rint(fl32(u / s)), -8, 7)`` (or 0..15), ties to even: the same float32 operations in
    the same order as ``golden.svdquant.SVDQuantLinear.quantize_input``, so codes and scales are
    bit-exact. ``lora_act = x . (lora_down / smooth)^T`` in float32 (``lora_down`` (r, K) acts on
    ``x / smooth``; r a multiple of 16, 0 allowed), equal to golden's ``(x / smooth) . down^T``
    up to float32 rounding (``<= 2 (K + 2) 2**-24 (|x / smooth| . |down|^T)``).

    Returns ``(codes uint8 (M, K/2) packed as pack_int4, scales float32 (M, K/64),
    lora_act float32 (M, r))``.
    """
    _check_options(backend, group_size, block_m=block_m)
    m, k = _tensor("x", x, torch.float32, (None, None)).shape
    if k % group_size:
        raise ValueError(f"K={k} (x.shape[1]) is not divisible by group_size={group_size}")
    _tensor("smooth", smooth, torch.float32, (k,))
    r = _tensor("lora_down", lora_down, torch.float32, (None, k)).shape[0]
    _check_rank("lora_down", r)
    _same_device(backend, x=x, smooth=smooth, lora_down=lora_down)
    shift = GELU_SHIFT if act_unsigned else 0.0
    _check_act(x, smooth, lora_down, shift)
    down_s = lora_down / smooth  # lora_down' (r, K): the branch weight for the raw x
    smooth = smooth.contiguous()
    if backend == "torch":
        return _k.quant_int4_torch(x, smooth, down_s, group_size, act_unsigned)
    codes = torch.empty((m, k // 2), dtype=torch.uint8, device=x.device)
    scales = torch.empty((m, k // group_size), dtype=torch.float32, device=x.device)
    lora = torch.zeros((m, r), dtype=torch.float32, device=x.device)
    if m:
        _k.quant_int4_kernel[(triton.cdiv(m, block_m),)](
            x, smooth, down_s, codes, scales, lora, m, k, r, x.stride(0), x.stride(1),
            down_s.stride(0), down_s.stride(1), codes.stride(0), scales.stride(0), lora.stride(0),
            BLOCK_M=block_m, GROUP=group_size, BLOCK_R=max(16, triton.next_power_of_2(r)),
            QMIN=0.0 if act_unsigned else -8.0, QMAX=15.0 if act_unsigned else 7.0,
            UNSIGNED=act_unsigned, HAS_LORA=r > 0, enable_fp_fusion=False)
    return codes, scales, lora


def _launch_gemm(kernel, m, n, k, r, codes_x, sx, codes_w, sw_, lora_act, lora_up, bias,
                 block_m, block_n, extra_args, **meta):
    """Launch a GEMM kernel; operands are made row-major (the kernels assume unit column
    strides), a no-op for contiguous inputs."""
    codes_x, sx, codes_w, sw_, lora_act, lora_up = (
        t.contiguous() for t in (codes_x, sx, codes_w, sw_, lora_act, lora_up))
    y = torch.empty((m, n), dtype=torch.float32, device=codes_x.device)
    if m and n:
        b = bias.contiguous() if bias is not None else y  # y: placeholder pointer, never read
        kernel[(triton.cdiv(m, block_m), triton.cdiv(n, block_n))](
            codes_x, sx, codes_w, sw_, lora_act, lora_up, b, y, m, n, k, r, *extra_args,
            codes_x.stride(0), sx.stride(0), codes_w.stride(0), sw_.stride(0),
            lora_act.stride(0), lora_up.stride(0), y.stride(0),
            BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_R=max(16, triton.next_power_of_2(r)),
            HAS_LORA=r > 0, HAS_BIAS=bias is not None, enable_fp_fusion=False, **meta)
    return y


@tensor_function("codes_x", "sx", "codes_w", "sw", "lora_act", "lora_up", "bias")
def w4a4_gemm_lora(
    codes_x: ArrayLike,
    sx: ArrayLike,
    codes_w: ArrayLike,
    sw: ArrayLike,
    lora_act: ArrayLike,
    lora_up: ArrayLike,
    bias: ArrayLike | None = None,
    group_size: int = GROUP_SIZE,
    *,
    backend: str = "triton",
    act_unsigned: bool = False,
    block_m: int = 64,
    block_n: int = 64,
) -> ArrayLike:
    """``y = w4a4_gemm(x, w) + lora_act . lora_up^T + bias``, float32 (M, N), written once.

    ``codes_x`` (M, K/2), ``codes_w`` (N, K/2): packed int4 (:func:`pack_int4`; x codes 0..15
    with ``act_unsigned``); ``sx`` (M, K/64), ``sw`` (N, K/64) float32; ``lora_act`` (M, r),
    ``lora_up`` (N, r) float32, r a multiple of 16 (0 allowed); ``bias`` (N,) float32 or None.
    Per 64-group g ascending: ``acc = fl32(acc + fl32(fl32(sx*sw) * dot_g))``, dot_g the exact
    int32 dot: bit-exact golden ``w4a4_gemm(..., fma=False)`` (GPU launches disable FMA
    contraction). Then ``y = fl32(fl32(acc + lora_act . lora_up^T) + bias)``, the branch dot in
    float32 in an unspecified order.
    """
    _check_options(backend, group_size, block_m=block_m, block_n=block_n)
    m, n, k, r = _check_gemm(backend, codes_x, sx, codes_w, sw, lora_act, lora_up, bias, group_size)
    if backend == "torch":
        return _k.w4a4_torch(codes_x, sx, codes_w, sw, lora_act, lora_up, bias, group_size,
                             act_unsigned)
    return _launch_gemm(_k.w4a4_kernel, m, n, k, r, codes_x, sx, codes_w, sw, lora_act, lora_up,
                        bias, block_m, block_n, (), GROUP=group_size, X_UNSIGNED=act_unsigned)


# --------------------------------------------------------------------------- NVFP4


def _global_scale(name: str, v: object) -> np.float32:
    t = np.float32(v) if isinstance(v, int | float | np.floating) else None
    if t is None or isinstance(v, bool) or not (np.isfinite(t) and t > 0):
        raise ValueError(f"{name} must be a finite float > 0, got {v!r}")
    return t


@tensor_function("x", "smooth", "lora_down")
def quantize_act_nvfp4(
    x: ArrayLike,
    smooth: ArrayLike,
    lora_down: ArrayLike,
    *,
    global_scale: float | None = None,
    backend: str = "triton",
    block_m: int = 64,
) -> tuple[ArrayLike, ArrayLike, float, ArrayLike]:
    """Fused NVFP4 quantization of ``u = fl32(x / smooth)`` + lora_down, one kernel pass over x.

    Bit-exact :func:`golden.nvfp4.quantize_nvfp4` of ``u``: tensor scale ``t = global_scale``,
    else ``fl32(amax(u) / 2688)`` (1 if amax is 0), taken from the validation pass's column
    maxima (``max_i fl32(|x_ij| / s_j) = fl32(max_i |x_ij| / s_j)``: RNE is monotone); per
    16-group ``sg = e4m3(min(fl32(amax_g / fl32(6 t)), 448))``, ``eff = fl32(sg t)``, codes
    ``e2m1(clamp(fl32(u / eff), -6, 6))`` (+0 where eff is 0). ``lora_act`` as in
    :func:`quantize_act`. Returns ``(codes uint8 (M, K/2) packed E2M1 patterns,
    scales float32 (M, K/16) holding E4M3 values, t, lora_act float32 (M, r))``.
    """
    _check_options(backend, None, block_m=block_m)
    m, k = _tensor("x", x, torch.float32, (None, None)).shape
    if k % NVFP4_GROUP:
        raise ValueError(f"K={k} (x.shape[1]) is not divisible by the NVFP4 group {NVFP4_GROUP}")
    _tensor("smooth", smooth, torch.float32, (k,))
    r = _tensor("lora_down", lora_down, torch.float32, (None, k)).shape[0]
    _check_rank("lora_down", r)
    _same_device(backend, x=x, smooth=smooth, lora_down=lora_down)
    if global_scale is not None:
        t = _global_scale("global_scale", global_scale)
    colmax = _check_act(x, smooth, lora_down)
    if global_scale is None:
        amax = np.float32((colmax / smooth).max().item()) if k else np.float32(0)
        t = amax / np.float32(2688.0) if amax > 0 else np.float32(1)
        t = t if t > 0 else np.nextafter(np.float32(0), np.float32(1))  # amax / 2688 underflow
    t6 = np.float32(6) * t
    down_s = lora_down / smooth
    smooth = smooth.contiguous()
    if backend == "torch":
        codes, sg = _k.quant_nvfp4_torch(x / smooth, float(t), float(t6))
        return codes, sg, float(t), x @ down_s.T
    codes = torch.empty((m, k // 2), dtype=torch.uint8, device=x.device)
    scales = torch.empty((m, k // NVFP4_GROUP), dtype=torch.float32, device=x.device)
    lora = torch.zeros((m, r), dtype=torch.float32, device=x.device)
    if m:
        _k.quant_nvfp4_kernel[(triton.cdiv(m, block_m),)](
            x, smooth, down_s, codes, scales, lora, m, k, r, float(t), float(t6),
            x.stride(0), x.stride(1), down_s.stride(0), down_s.stride(1), codes.stride(0),
            scales.stride(0), lora.stride(0), BLOCK_M=block_m,
            BLOCK_R=max(16, triton.next_power_of_2(r)), HAS_LORA=r > 0, enable_fp_fusion=False)
    return codes, scales, float(t), lora


@tensor_function("codes_x", "sx", "codes_w", "sw", "lora_act", "lora_up", "bias")
def nvfp4_gemm_lora(
    codes_x: ArrayLike,
    sx: ArrayLike,
    tx: float,
    codes_w: ArrayLike,
    sw: ArrayLike,
    tw: float,
    lora_act: ArrayLike,
    lora_up: ArrayLike,
    bias: ArrayLike | None = None,
    *,
    backend: str = "triton",
    block_m: int = 64,
    block_n: int = 64,
) -> ArrayLike:
    """``y = nvfp4_gemm(x, w) + lora_act . lora_up^T + bias``, float32 (M, N), written once.

    ``codes_*`` (., K/2) packed E2M1 patterns, ``sx`` (M, K/16) / ``sw`` (N, K/16) float32 E4M3
    values, ``tx``/``tw`` the tensor scales. Bit-exact :func:`golden.nvfp4.nvfp4_gemm`: per
    16-group ascending ``acc = fl32(acc + fl32(sx*sw) * dot_g)`` (exact products), then
    ``fl32(acc * fl32(tx*tw))``; the epilogue as in :func:`w4a4_gemm_lora`.
    """
    _check_options(backend, None, block_m=block_m, block_n=block_n)
    tt = _global_scale("tx", tx) * _global_scale("tw", tw)
    m, n, k, r = _check_gemm(backend, codes_x, sx, codes_w, sw, lora_act, lora_up, bias,
                             NVFP4_GROUP)
    if backend == "torch":
        return _k.nvfp4_torch(codes_x, sx, codes_w, sw, float(tt), lora_act, lora_up, bias)
    return _launch_gemm(_k.nvfp4_kernel, m, n, k, r, codes_x, sx, codes_w, sw, lora_act, lora_up,
                        bias, block_m, block_n, (float(tt),))


# --------------------------------------------------------------------------- layer


@tensor_function("x")
def w4a4_linear(x: ArrayLike, layer: SVDQuantLinear, *, backend: str = "triton") -> ArrayLike:
    """``layer(x)`` for a ``golden.svdquant.SVDQuantLinear`` (INT4 or NVFP4), float32 (..., N).

    Runs the two fused kernels; the layer's weights are packed on each call (a deployment packs
    once). The rank is zero-padded to a multiple of 16 (exact). The quantized path is bit-exact
    against the layer's (for ``fma=True`` layers the GEMM still follows the ``fma=False`` order);
    the branch ``(x . down'^T) . up^T`` differs from golden's ``((x / smooth) . down^T) . up^T``
    by float32 rounding only.
    """
    if not isinstance(layer, SVDQuantLinear):
        raise ValueError(f"layer must be a golden.svdquant.SVDQuantLinear, got "
                         f"{type(layer).__name__}")
    k, n = layer.in_features, layer.out_features
    if x.dim() < 1 or x.shape[-1] != k:
        raise ValueError(f"x must have shape (..., {k}), got {tuple(x.shape)}")
    dev = x.device

    def f32(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a, np.float32)).to(dev)

    pad = -layer.rank % _RANK_ALIGN
    down = torch.nn.functional.pad(f32(layer.lora_down), (0, 0, 0, pad))
    up = torch.nn.functional.pad(f32(layer.lora_up), (0, pad))
    bias = f32(layer.epilogue_bias) if layer.bias is not None or layer.act_unsigned else None
    cw = pack_int4(torch.from_numpy(layer.qweight).to(dev))
    x2 = x.reshape(-1, k)
    if layer.fmt == "nvfp4":
        cx, sx, tx, la = quantize_act_nvfp4(x2, f32(layer.smooth), down, backend=backend)
        y = nvfp4_gemm_lora(cx, sx, tx, cw, f32(layer.wscales), layer.wglobal, la, up, bias,
                            backend=backend)
    else:
        cx, sx, la = quantize_act(x2, f32(layer.smooth), down, layer.group_size, backend=backend,
                                  act_unsigned=layer.act_unsigned)
        y = w4a4_gemm_lora(cx, sx, cw, f32(layer.wscales), la, up, bias, layer.group_size,
                           backend=backend, act_unsigned=layer.act_unsigned)
    return y.reshape(*x.shape[:-1], n)
