"""Triton kernels behind :mod:`sw.svdquant` and their plain-torch twins (``backend="torch"``).

Internal: everything here is reached through :mod:`sw.svdquant`, which validates first.

Float contract (binary32, round-to-nearest-even, as :mod:`golden.svdquant_ops` and
:mod:`golden.nvfp4` state it): every division is ``tl.math.div_rn`` (correctly rounded on a GPU,
``np.divide`` in the interpreter); rounding to an integer is ``(v + 1.5*2**23) - 1.5*2**23``,
exact ties-to-even for ``|v| < 2**22`` (inputs are clamped first); the host launches with
``enable_fp_fusion=False`` so a GPU build contracts no ``a*b + c`` into an FMA. ``tl.dot`` serves
three purposes: exact int8 x int8 -> int32 group dots, exact E2M1 group dots (values with two
significant bits, |partial sums| <= 576), and the float32 low-rank branch, whose summation order
is unspecified (the golden branch is held to a tolerance, not bits).

Packed int4 layout, shared with :func:`sw.svdquant.pack_int4`: byte ``j`` of a row holds element
``2j`` in its low nibble and element ``2j + 1`` in its high nibble.
"""

from __future__ import annotations

from . import _runtime  # noqa: F401 - first: sets TRITON_INTERPRET before triton is imported

# isort: split
import torch
import triton
import triton.language as tl

__all__ = [
    "nvfp4_kernel",
    "nvfp4_torch",
    "pack_torch",
    "quant_int4_kernel",
    "quant_int4_torch",
    "quant_nvfp4_kernel",
    "quant_nvfp4_torch",
    "unpack_torch",
    "w4a4_kernel",
    "w4a4_torch",
]


@triton.jit
def _rint(v):
    """Round half to even, exact for |v| < 2**22 (callers clamp first)."""
    return (v + 12582912.0) - 12582912.0


@triton.jit
def _pack_pairs(q, ROWS: tl.constexpr, COLS: tl.constexpr):
    """int32 codes (ROWS, COLS) -> uint8 (ROWS, COLS // 2): low nibble even column."""
    lo, hi = tl.split(tl.reshape(q, (ROWS, COLS // 2, 2)))
    return ((lo & 15) | ((hi & 15) << 4)).to(tl.uint8)


@triton.jit
def _unpack_int4(b, UNSIGNED: tl.constexpr):
    """uint8 bytes -> (low, high) nibbles as int8: 0..15, or -8..7 sign-extended."""
    b = b.to(tl.int32)
    lo = b & 15
    hi = (b >> 4) & 15
    if not UNSIGNED:
        lo = lo - ((lo & 8) << 1)
        hi = hi - ((hi & 8) << 1)
    return lo.to(tl.int8), hi.to(tl.int8)


@triton.jit
def _e4m3_rne(r):
    """RNE of float32 ``0 <= r <= 448`` onto FP8-E4M3 values, returned as float32."""
    bits = r.to(tl.int32, bitcast=True)
    bits = (bits + 0x7FFFF + ((bits >> 20) & 1)) & -1048576  # keep 3 of 23 mantissa bits
    normal = bits.to(tl.float32, bitcast=True)
    subnormal = _rint(r * 512.0) * 0.001953125  # below 2**-6 the E4M3 quantum is 2**-9
    return tl.where(r >= 0.015625, normal, subnormal)


@triton.jit
def _e2m1_code(v):
    """E2M1 code of float32 ``|v| <= 6``: RNE onto {0,.5,1,1.5,2,3,4,6}, ties to the even code
    (midpoints 0.25 1.25 2.5 5 go down, 0.75 1.75 3.5 go up); bit 3 = the sign bit of v."""
    a = tl.abs(v)
    mag = ((a > 0.25).to(tl.int32) + (a >= 0.75).to(tl.int32) + (a > 1.25).to(tl.int32)
           + (a >= 1.75).to(tl.int32) + (a > 2.5).to(tl.int32) + (a >= 3.5).to(tl.int32)
           + (a > 5.0).to(tl.int32))
    sign = (v.to(tl.int32, bitcast=True) >> 28) & 8
    return mag | sign


@triton.jit
def _e2m1_value(c):
    """float32 value of E2M1 codes (int32 0..15)."""
    i = c & 7
    f = i.to(tl.float32)
    mag = tl.where(i < 4, f * 0.5, tl.where(i < 6, f - 2.0, f * 2.0 - 8.0))
    return tl.where((c & 8) != 0, -mag, mag)


@triton.jit
def quant_int4_kernel(x_ptr, smooth_ptr, down_ptr, codes_ptr, scales_ptr, lora_ptr, M, K, R,
                       stride_xm, stride_xk, stride_dr, stride_dk, stride_cm, stride_sm, stride_lm,
                       BLOCK_M: tl.constexpr, GROUP: tl.constexpr, BLOCK_R: tl.constexpr,
                       QMIN: tl.constexpr, QMAX: tl.constexpr, UNSIGNED: tl.constexpr,
                       HAS_LORA: tl.constexpr):
    """One pass over x (BLOCK_M rows, all of K): lora_act = x . down'^T and the int4 codes and
    scales of u = x / smooth (or (x + 0.171875) / smooth, UNSIGNED), one group per K step."""
    rm = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    m_ok = rm < M
    rk = tl.arange(0, GROUP)
    rh = tl.arange(0, GROUP // 2)
    rr = tl.arange(0, BLOCK_R)
    lora = tl.zeros((BLOCK_M, BLOCK_R), dtype=tl.float32)
    for g in range(0, K // GROUP):
        kk = g * GROUP + rk
        x = tl.load(x_ptr + rm[:, None] * stride_xm + kk[None, :] * stride_xk,
                    mask=m_ok[:, None], other=0.0)
        if HAS_LORA:
            d = tl.load(down_ptr + rr[None, :] * stride_dr + kk[:, None] * stride_dk,
                        mask=rr[None, :] < R, other=0.0)
            lora = tl.dot(x, d, lora, input_precision="ieee")
        sm = tl.load(smooth_ptr + kk)
        if UNSIGNED:
            u = tl.math.div_rn(x + 0.171875, sm[None, :])
        else:
            u = tl.math.div_rn(x, sm[None, :])
        s = tl.math.div_rn(tl.max(tl.abs(u), axis=1), QMAX)
        s = tl.where(s == 0.0, 1.0, s)
        v = tl.minimum(tl.maximum(tl.math.div_rn(u, s[:, None]), QMIN), QMAX)
        packed = _pack_pairs(_rint(v).to(tl.int32), BLOCK_M, GROUP)
        tl.store(codes_ptr + rm[:, None] * stride_cm + (g * (GROUP // 2) + rh)[None, :], packed,
                 mask=m_ok[:, None])
        tl.store(scales_ptr + rm * stride_sm + g, s, mask=m_ok)
    if HAS_LORA:
        tl.store(lora_ptr + rm[:, None] * stride_lm + rr[None, :], lora,
                 mask=m_ok[:, None] & (rr[None, :] < R))


@triton.jit
def quant_nvfp4_kernel(x_ptr, smooth_ptr, down_ptr, codes_ptr, scales_ptr, lora_ptr, M, K, R,
                        t, t6, stride_xm, stride_xk, stride_dr, stride_dk, stride_cm, stride_sm,
                        stride_lm, BLOCK_M: tl.constexpr, BLOCK_R: tl.constexpr,
                        HAS_LORA: tl.constexpr):
    """One pass over x: lora_act = x . down'^T and NVFP4 codes / E4M3 group scales of
    u = x / smooth for the tensor scale t (t6 = fl32(6 t)), 16 channels per K step."""
    rm = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    m_ok = rm < M
    rk = tl.arange(0, 16)
    rh = tl.arange(0, 8)
    rr = tl.arange(0, BLOCK_R)
    lora = tl.zeros((BLOCK_M, BLOCK_R), dtype=tl.float32)
    for g in range(0, K // 16):
        kk = g * 16 + rk
        x = tl.load(x_ptr + rm[:, None] * stride_xm + kk[None, :] * stride_xk,
                    mask=m_ok[:, None], other=0.0)
        if HAS_LORA:
            d = tl.load(down_ptr + rr[None, :] * stride_dr + kk[:, None] * stride_dk,
                        mask=rr[None, :] < R, other=0.0)
            lora = tl.dot(x, d, lora, input_precision="ieee")
        u = tl.math.div_rn(x, tl.load(smooth_ptr + kk)[None, :])
        sg = _e4m3_rne(tl.minimum(tl.math.div_rn(tl.max(tl.abs(u), axis=1), t6), 448.0))
        eff = sg * t
        ok = eff > 0.0
        v = tl.math.div_rn(u, tl.where(ok, eff, 1.0)[:, None])
        v = tl.minimum(tl.maximum(tl.where(ok[:, None], v, 0.0), -6.0), 6.0)
        packed = _pack_pairs(_e2m1_code(v), BLOCK_M, 16)
        tl.store(codes_ptr + rm[:, None] * stride_cm + (g * 8 + rh)[None, :], packed,
                 mask=m_ok[:, None])
        tl.store(scales_ptr + rm * stride_sm + g, sg, mask=m_ok)
    if HAS_LORA:
        tl.store(lora_ptr + rm[:, None] * stride_lm + rr[None, :], lora,
                 mask=m_ok[:, None] & (rr[None, :] < R))


@triton.jit
def _epilogue(acc, rm, rn, la_ptr, lu_ptr, bias_ptr, y_ptr, M, N, R, stride_lm, stride_un,
              stride_ym, BLOCK_R: tl.constexpr, HAS_LORA: tl.constexpr, HAS_BIAS: tl.constexpr):
    """y = fl32(fl32(acc + lora_act . lora_up^T) + bias), written once."""
    m_ok = rm < M
    n_ok = rn < N
    if HAS_LORA:
        rr = tl.arange(0, BLOCK_R)
        la = tl.load(la_ptr + rm[:, None] * stride_lm + rr[None, :],
                     mask=m_ok[:, None] & (rr[None, :] < R), other=0.0)
        lu = tl.load(lu_ptr + rn[None, :] * stride_un + rr[:, None],
                     mask=(rr[:, None] < R) & n_ok[None, :], other=0.0)
        acc = acc + tl.dot(la, lu, input_precision="ieee")
    if HAS_BIAS:
        acc = acc + tl.load(bias_ptr + rn, mask=n_ok, other=0.0)[None, :]
    tl.store(y_ptr + rm[:, None] * stride_ym + rn[None, :], acc, mask=m_ok[:, None] & n_ok[None, :])


@triton.jit
def w4a4_kernel(cx_ptr, sx_ptr, cw_ptr, sw_ptr, la_ptr, lu_ptr, bias_ptr, y_ptr, M, N, K, R,
                 stride_cxm, stride_sxm, stride_cwn, stride_swn, stride_lm, stride_un, stride_ym,
                 BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, GROUP: tl.constexpr,
                 BLOCK_R: tl.constexpr, X_UNSIGNED: tl.constexpr, HAS_LORA: tl.constexpr,
                 HAS_BIAS: tl.constexpr):
    """acc = 0; per group g ascending: acc = fl32(acc + fl32(fl32(sx sw) * dot_g)), dot_g the
    exact int32 dot of the unpacked nibbles (low-nibble and high-nibble halves summed)."""
    rm = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    rn = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    m_ok = rm < M
    n_ok = rn < N
    rh = tl.arange(0, GROUP // 2)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for g in range(0, K // GROUP):
        kb = g * (GROUP // 2) + rh
        bx = tl.load(cx_ptr + rm[:, None] * stride_cxm + kb[None, :], mask=m_ok[:, None], other=0)
        bw = tl.load(cw_ptr + rn[None, :] * stride_cwn + kb[:, None], mask=n_ok[None, :], other=0)
        xlo, xhi = _unpack_int4(bx, X_UNSIGNED)
        wlo, whi = _unpack_int4(bw, False)
        dot = tl.dot(xlo, wlo, out_dtype=tl.int32) + tl.dot(xhi, whi, out_dtype=tl.int32)
        sx = tl.load(sx_ptr + rm * stride_sxm + g, mask=m_ok, other=0.0)
        sw = tl.load(sw_ptr + rn * stride_swn + g, mask=n_ok, other=0.0)
        acc = acc + (sx[:, None] * sw[None, :]) * dot.to(tl.float32)
    _epilogue(acc, rm, rn, la_ptr, lu_ptr, bias_ptr, y_ptr, M, N, R, stride_lm, stride_un,
              stride_ym, BLOCK_R, HAS_LORA, HAS_BIAS)


@triton.jit
def nvfp4_kernel(cx_ptr, sx_ptr, cw_ptr, sw_ptr, la_ptr, lu_ptr, bias_ptr, y_ptr, M, N, K, R,
                  tt, stride_cxm, stride_sxm, stride_cwn, stride_swn, stride_lm, stride_un,
                  stride_ym, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                  BLOCK_R: tl.constexpr, HAS_LORA: tl.constexpr, HAS_BIAS: tl.constexpr):
    """golden.nvfp4.nvfp4_gemm: per 16-group ascending acc = fl32(acc + fl32(sx sw) * dot_g)
    (exact products), then acc = fl32(acc * tt), tt = fl32(tx tw); then the epilogue."""
    rm = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    rn = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    m_ok = rm < M
    n_ok = rn < N
    rh = tl.arange(0, 8)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for g in range(0, K // 16):
        kb = g * 8 + rh
        bx = tl.load(cx_ptr + rm[:, None] * stride_cxm + kb[None, :], mask=m_ok[:, None],
                     other=0).to(tl.int32)
        bw = tl.load(cw_ptr + rn[:, None] * stride_cwn + kb[None, :], mask=n_ok[:, None],
                     other=0).to(tl.int32)
        xv = tl.reshape(tl.join(_e2m1_value(bx & 15), _e2m1_value(bx >> 4)), (BLOCK_M, 16))
        wv = tl.reshape(tl.join(_e2m1_value(bw & 15), _e2m1_value(bw >> 4)), (BLOCK_N, 16))
        dot = tl.dot(xv, tl.trans(wv))  # exact at any input precision: see the module docstring
        sx = tl.load(sx_ptr + rm * stride_sxm + g, mask=m_ok, other=0.0)
        sw = tl.load(sw_ptr + rn * stride_swn + g, mask=n_ok, other=0.0)
        acc = acc + (sx[:, None] * sw[None, :]) * dot
    acc = acc * tt
    _epilogue(acc, rm, rn, la_ptr, lu_ptr, bias_ptr, y_ptr, M, N, R, stride_lm, stride_un,
              stride_ym, BLOCK_R, HAS_LORA, HAS_BIAS)


# --------------------------------------------------------------------------- torch twins
# The same float32 operations in the same order as the kernels (torch CPU/GPU elementwise ops are
# single IEEE RNE operations); unvalidated: sw.svdquant checks the arguments first.

_E2M1 = torch.tensor([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0])


def pack_torch(codes: torch.Tensor) -> torch.Tensor:
    """(..., K) codes -> uint8 (..., K/2), low nibble = even k."""
    c = codes.to(torch.int16) & 15
    return (c[..., 0::2] | (c[..., 1::2] << 4)).to(torch.uint8)


def unpack_torch(packed: torch.Tensor, signed: bool) -> torch.Tensor:
    """uint8 (..., K/2) -> int8 -8..7 (signed) or uint8 0..15, shape (..., K)."""
    p = packed.to(torch.int16)
    c = torch.stack([p & 15, p >> 4], dim=-1).reshape(*packed.shape[:-1], 2 * packed.shape[-1])
    return (c - ((c & 8) << 1)).to(torch.int8) if signed else c.to(torch.uint8)


def _epilogue_torch(acc, lora_act, lora_up, bias):
    if lora_act.shape[1]:
        acc = acc + lora_act @ lora_up.T
    return acc if bias is None else acc + bias


def quant_int4_torch(x, smooth, down_s, group: int, unsigned: bool):
    """(packed codes, scales, lora_act) as :func:`quant_int4_kernel` computes them."""
    m, k = x.shape
    u = ((x + 0.171875) if unsigned else x) / smooth
    g = u.reshape(m, k // group, group)
    s = g.abs().amax(dim=-1) / (15.0 if unsigned else 7.0)
    s = torch.where(s == 0, torch.ones_like(s), s)
    q = (g / s[..., None]).clamp(0 if unsigned else -8, 15 if unsigned else 7).round()
    return pack_torch(q.reshape(m, k).to(torch.int8)), s, x @ down_s.T


def w4a4_torch(codes_x, sx, codes_w, sw, lora_act, lora_up, bias, group: int, unsigned: bool):
    """:func:`w4a4_kernel` in torch: integer-valued float32 group matmuls are exact (< 2**24)."""
    m, n, ng = codes_x.shape[0], codes_w.shape[0], sx.shape[1]
    qx = unpack_torch(codes_x, not unsigned).float().reshape(m, ng, group)
    qw = unpack_torch(codes_w, True).float().reshape(n, ng, group)
    acc = torch.zeros((m, n), dtype=torch.float32, device=codes_x.device)
    for g in range(ng):
        acc = acc + (sx[:, g, None] * sw[None, :, g]) * (qx[:, g] @ qw[:, g].T)
    return _epilogue_torch(acc, lora_act, lora_up, bias)


def quant_nvfp4_torch(u, t: float, t6: float):
    """(packed codes, E4M3 scales) of ``u`` as :func:`quant_nvfp4_kernel` computes them, with
    torch's own float8_e4m3fn rounding and signbit (an independent route to the same bits)."""
    m, k = u.shape
    g = u.reshape(m, k // 16, 16)
    sg = torch.clamp(g.abs().amax(dim=-1) / t6, max=448.0).to(torch.float8_e4m3fn).float()
    eff = sg * t
    ok = eff > 0
    v = g / torch.where(ok, eff, torch.ones_like(eff))[..., None]
    v = torch.where(ok[..., None], v, torch.zeros_like(v)).clamp(-6.0, 6.0)
    a = v.abs()
    mag = sum((a > 0.25, a >= 0.75, a > 1.25, a >= 1.75, a > 2.5, a >= 3.5, a > 5.0),
              torch.zeros_like(a, dtype=torch.uint8))
    codes = (mag | (torch.signbit(v).to(torch.uint8) << 3)).reshape(m, k)
    return pack_torch(codes), sg


def nvfp4_torch(codes_x, sx, codes_w, sw, tt: float, lora_act, lora_up, bias):
    """:func:`nvfp4_kernel` in torch, decoding E2M1 by table lookup."""
    ng = sx.shape[1]

    def dec(c: torch.Tensor) -> torch.Tensor:
        q = unpack_torch(c, False).long()
        v = _E2M1.to(c.device)[q & 7]
        return torch.where(q >= 8, -v, v).reshape(c.shape[0], ng, 16)

    xv, wv = dec(codes_x), dec(codes_w)
    acc = torch.zeros((xv.shape[0], wv.shape[0]), dtype=torch.float32, device=codes_x.device)
    for g in range(ng):  # quarter-integer partial sums, |.| <= 576: exact in any order
        acc = acc + (sx[:, g, None] * sw[None, :, g]) * (xv[:, g] @ wv[:, g].T)
    return _epilogue_torch(acc * tt, lora_act, lora_up, bias)
