"""Sana ReLU linear attention (LiteLA) in Triton, checked against
:func:`golden.linear_attention.linear_attention`.

Per (batch, head), non-causal, ``phi = ReLU`` on q and k (not v), no ``1/sqrt(d)``::

    o_i = sum_j v_j (phi(k_j) . phi(q_i)) / (sum_j phi(k_j) . phi(q_i) + eps)

computed the linear way, as Sana's Triton path does, in two kernels:

1. ``_vk_kernel``, one program per (batch, head): a loop over token chunks of ``block_n``
   accumulates ``vk = v^T phi(k)`` ``(Dv, D)`` and ``ksum = sum_j phi(k_j)`` ``(D,)`` in float32
   (together the ``(Dv+1) x D`` matrix of the padded-ones-row trick; ``ksum`` is its last row).
2. ``_apply_kernel``, one program per (batch, head, query chunk of ``block_m``):
   ``num = phi(q) vk^T``, ``den = phi(q) . ksum``, ``o = num / (den + eps)``, written once.

Inputs are float32, or float16/bfloat16 upcast to float32 right after the load; all math and
the output are float32 (like golden). Dots use ``input_precision="ieee"`` (no TF32), so a GPU
matches the interpreter up to summation order.
"""

from __future__ import annotations

from ._runtime import INTERPRETED  # first: sets TRITON_INTERPRET before triton is imported

# isort: split
import torch
import triton
import triton.language as tl

from golden.linear_attention import check_qkv

from .arrays import ArrayLike, tensor_function

__all__ = ["MAX_HEAD_DIM", "linear_attention"]

#: Largest head dim (of q/k and of v) one program holds in registers (Sana uses 32).
MAX_HEAD_DIM = 64

_BACKENDS = ("triton", "torch")
_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


@triton.jit
def _vk_kernel(k_ptr, v_ptr, vk_ptr, ks_ptr, H, N, D, DV,
               s_kb, s_kh, s_kn, s_kd, s_vb, s_vh, s_vn, s_vd,
               BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_DV: tl.constexpr):
    bh = tl.program_id(0)
    b = bh // H
    h = bh % H
    rd = tl.arange(0, BLOCK_D)
    rdv = tl.arange(0, BLOCK_DV)
    rn = tl.arange(0, BLOCK_N)
    k_base = k_ptr + b.to(tl.int64) * s_kb + h.to(tl.int64) * s_kh
    v_base = v_ptr + b.to(tl.int64) * s_vb + h.to(tl.int64) * s_vh
    acc = tl.zeros((BLOCK_DV, BLOCK_D), dtype=tl.float32)
    ksum = tl.zeros((BLOCK_D,), dtype=tl.float32)
    for n0 in range(0, N, BLOCK_N):
        nn = n0 + rn
        kt = tl.load(k_base + nn[:, None] * s_kn + rd[None, :] * s_kd,
                     mask=(nn[:, None] < N) & (rd[None, :] < D), other=0.0).to(tl.float32)
        kt = tl.maximum(kt, 0.0)
        vt = tl.load(v_base + nn[:, None] * s_vn + rdv[None, :] * s_vd,
                     mask=(nn[:, None] < N) & (rdv[None, :] < DV), other=0.0).to(tl.float32)
        acc += tl.dot(tl.trans(vt), kt, input_precision="ieee")
        ksum += tl.sum(kt, axis=0)
    out = vk_ptr + bh.to(tl.int64) * DV * D
    tl.store(out + rdv[:, None] * D + rd[None, :], acc,
             mask=(rdv[:, None] < DV) & (rd[None, :] < D))
    tl.store(ks_ptr + bh.to(tl.int64) * D + rd, ksum, mask=rd < D)


@triton.jit
def _apply_kernel(q_ptr, vk_ptr, ks_ptr, o_ptr, H, NQ, D, DV, eps,
                  s_qb, s_qh, s_qn, s_qd, s_ob, s_oh, s_on, s_od,
                  BLOCK_M: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_DV: tl.constexpr):
    bh = tl.program_id(0)
    pid_m = tl.program_id(1)
    b = bh // H
    h = bh % H
    rd = tl.arange(0, BLOCK_D)
    rdv = tl.arange(0, BLOCK_DV)
    rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    vk = tl.load(vk_ptr + bh.to(tl.int64) * DV * D + rdv[:, None] * D + rd[None, :],
                 mask=(rdv[:, None] < DV) & (rd[None, :] < D), other=0.0)
    ks = tl.load(ks_ptr + bh.to(tl.int64) * D + rd, mask=rd < D, other=0.0)
    q_base = q_ptr + b.to(tl.int64) * s_qb + h.to(tl.int64) * s_qh
    qt = tl.load(q_base + rm[:, None] * s_qn + rd[None, :] * s_qd,
                 mask=(rm[:, None] < NQ) & (rd[None, :] < D), other=0.0).to(tl.float32)
    qt = tl.maximum(qt, 0.0)
    num = tl.dot(qt, tl.trans(vk), input_precision="ieee")
    den = tl.where(rm < NQ, tl.sum(qt * ks[None, :], axis=1), 1.0)  # no 0/0 in padding rows
    o = num / (den[:, None] + eps)
    o_base = o_ptr + b.to(tl.int64) * s_ob + h.to(tl.int64) * s_oh
    tl.store(o_base + rm[:, None] * s_on + rdv[None, :] * s_od, o,
             mask=(rm[:, None] < NQ) & (rdv[None, :] < DV))


def _check_tensor(name: str, t: object) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dim() != 4:
        raise ValueError(
            f"{name} must be 4-D (batch, heads, tokens, head_dim), got shape {tuple(t.shape)}"
        )
    if t.dtype not in _DTYPES:
        raise ValueError(f"{name} must be float32, float16 or bfloat16, got {t.dtype}")
    if not 1 <= t.shape[-1] <= MAX_HEAD_DIM:
        raise ValueError(
            f"{name} head_dim must be in 1..{MAX_HEAD_DIM}, got {t.shape[-1]} "
            f"(shape {tuple(t.shape)})"
        )
    return t


def _validate(q, k, v, eps, backend: str, block_m: int, block_n: int) -> None:
    """Every check, before any launch; ``ValueError`` naming the argument and the value."""
    for name, t in (("q", q), ("k", k), ("v", v)):
        _check_tensor(name, t)
    if k.dtype != q.dtype or v.dtype != q.dtype:
        raise ValueError(f"dtypes differ: q {q.dtype}, k {k.dtype}, v {v.dtype}")
    if k.device != q.device or v.device != q.device:
        raise ValueError(f"devices differ: q on {q.device}, k on {k.device}, v on {v.device}")
    check_qkv(q.shape, k.shape, v.shape, eps)
    if backend not in _BACKENDS:
        raise ValueError(f"backend must be one of {_BACKENDS}, got {backend!r}")
    for name, b in (("block_m", block_m), ("block_n", block_n)):
        if isinstance(b, bool) or not isinstance(b, int) or b < 16 or b > 256 or b & (b - 1):
            raise ValueError(f"{name} must be a power of two in 16..256, got {b!r}")
    if backend == "triton" and not INTERPRETED and q.device.type != "cuda":
        raise ValueError(
            f"backend='triton' needs CUDA tensors when not interpreted, got q on {q.device}"
        )
    for name, t in (("q", q), ("k", k), ("v", v)):
        finite = torch.isfinite(t)
        if not bool(finite.all()):
            raise ValueError(f"{name} holds a non-finite value ({t[~finite][0].item()})")


def _torch_path(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, eps: float) -> torch.Tensor:
    """Plain-torch float32 reference with golden's padded-ones-row formulation."""
    qf, kf, vf = q.float(), k.float(), v.float()
    ones = torch.ones(*vf.shape[:-1], 1, dtype=torch.float32, device=vf.device)
    vk = torch.cat([vf, ones], dim=-1).transpose(-1, -2) @ torch.relu(kf)
    out = torch.relu(qf) @ vk.transpose(-1, -2)
    return out[..., :-1] / (out[..., -1:] + eps)


@tensor_function("q", "k", "v")
def linear_attention(
    q: ArrayLike,
    k: ArrayLike,
    v: ArrayLike,
    eps: float = 1e-8,
    *,
    backend: str = "triton",
    block_m: int = 64,
    block_n: int = 64,
) -> ArrayLike:
    """Sana ReLU linear attention; returns float32 ``(B, H, Nq, Dv)``.

    ``q`` ``(B, H, Nq, D)``, ``k`` ``(B, H, N, D)``, ``v`` ``(B, H, N, Dv)``, one dtype
    (float32/float16/bfloat16) and device, ``1 <= D, Dv <= 64``, finite; ``eps >= 0``.
    ``o = (phi(q) (v^T phi(k))^T) / (phi(q) . sum_j phi(k_j) + eps)`` with ``phi = ReLU``.
    ``backend="triton"`` runs the two kernels (chunks of ``block_n`` tokens for the ``vk``
    accumulation, ``block_m`` queries per apply program); ``backend="torch"`` is the plain
    torch path. Raises ``ValueError`` before any launch on bad input.
    """
    _validate(q, k, v, eps, backend, block_m, block_n)
    if backend == "torch":
        return _torch_path(q, k, v, float(eps))
    bsz, heads, nq, d = q.shape
    n, dv = k.shape[2], v.shape[3]
    o = torch.empty((bsz, heads, nq, dv), dtype=torch.float32, device=q.device)
    if bsz * heads == 0 or nq == 0:
        return o
    block_d = max(16, triton.next_power_of_2(d))
    block_dv = max(16, triton.next_power_of_2(dv))
    vk = torch.empty((bsz * heads, dv, d), dtype=torch.float32, device=q.device)
    ks = torch.empty((bsz * heads, d), dtype=torch.float32, device=q.device)
    _vk_kernel[(bsz * heads,)](k, v, vk, ks, heads, n, d, dv, *k.stride(), *v.stride(),
                               BLOCK_N=block_n, BLOCK_D=block_d, BLOCK_DV=block_dv)
    grid = (bsz * heads, triton.cdiv(nq, block_m))
    _apply_kernel[grid](q, vk, ks, o, heads, nq, d, dv, float(eps), *q.stride(), *o.stride(),
                        BLOCK_M=block_m, BLOCK_D=block_d, BLOCK_DV=block_dv)
    return o
