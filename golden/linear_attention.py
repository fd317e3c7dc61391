"""Sana's ReLU linear attention (LiteLA), float references.

Per (batch, head), non-causal, ``phi = ReLU`` on q and k only, no ``1/sqrt(d)``::

    o_i = sum_j v_j (phi(k_j) . phi(q_i)) / (sum_j phi(k_j) . phi(q_i) + eps)

Shapes: q ``(B, H, Nq, D)``, k ``(B, H, N, D)``, v ``(B, H, N, Dv)`` (Sana: D = Dv = 32,
Nq = N). Math in float32 torch like Sana; numpy arrays and tensors alike, the result in q's kind
(:mod:`golden.arrays`; tensors on q's device).
"""

from __future__ import annotations

import math

import torch

from .arrays import ArrayLike, array_function

__all__ = ["check_qkv", "linear_attention", "linear_attention_quadratic"]


def _float32(name: str, x: torch.Tensor) -> torch.Tensor:
    """``x`` as a float32 tensor; ``ValueError`` naming ``name`` if it holds NaN or Inf."""
    t = x.detach()
    if t.is_complex():
        raise ValueError(f"{name} must be real, got dtype {t.dtype}")
    t = t.to(torch.float32)
    if t.ndim != 4:
        raise ValueError(
            f"{name} must be 4-D (batch, heads, tokens, dim), got shape {tuple(t.shape)}"
        )
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} holds a non-finite value ({t[~torch.isfinite(t)][0].item()})")
    return t


def check_qkv(q_shape, k_shape, v_shape, eps) -> None:
    """The shape and ``eps`` contract of linear attention (shared with the Triton kernels):
    q (B, H, Nq, D), k (B, H, N, D), v (B, H, N, Dv), eps a finite number >= 0."""
    q_shape, k_shape, v_shape = tuple(q_shape), tuple(k_shape), tuple(v_shape)
    if q_shape[:2] != k_shape[:2] or k_shape[:2] != v_shape[:2]:
        raise ValueError(f"batch/heads differ: q {q_shape}, k {k_shape}, v {v_shape}")
    if q_shape[-1] != k_shape[-1]:
        raise ValueError(f"head_dim of q ({q_shape[-1]}) and k ({k_shape[-1]}) differ")
    if k_shape[2] != v_shape[2]:
        raise ValueError(f"tokens of k ({k_shape[2]}) and v ({v_shape[2]}) differ")
    if isinstance(eps, bool) or not isinstance(eps, int | float) or not math.isfinite(eps) \
            or eps < 0:
        raise ValueError(f"eps must be a finite number >= 0, got {eps!r}")


def _prepare(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
             eps: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Validate shapes and eps; returns float32 tensors on q's device."""
    qt, kt, vt = _float32("q", q), _float32("k", k), _float32("v", v)
    check_qkv(qt.shape, kt.shape, vt.shape, eps)
    dev = qt.device
    return qt, kt.to(dev), vt.to(dev)


@array_function("q", "k", "v", native="torch")
def linear_attention(q: ArrayLike, k: ArrayLike, v: ArrayLike, eps: float = 1e-8) -> ArrayLike:
    """Sana linear attention computed the linear way, O(N D Dv) per head.

    ``v_pad = [v, 1]`` ``(N, Dv+1)``; ``vk = v_pad^T phi(k)`` ``(Dv+1, D)`` summed over all N;
    ``out = phi(q) vk^T`` ``(Nq, Dv+1)``; ``o = out[:, :Dv] / (out[:, Dv] + eps)``.
    """
    qt, kt, vt = _prepare(q, k, v, eps)
    ones = torch.ones(*vt.shape[:-1], 1, dtype=vt.dtype, device=vt.device)
    v_pad = torch.cat([vt, ones], dim=-1)
    vk = v_pad.transpose(-1, -2) @ torch.relu(kt)
    out = torch.relu(qt) @ vk.transpose(-1, -2)
    return out[..., :-1] / (out[..., -1:] + eps)


@array_function("q", "k", "v", native="torch")
def linear_attention_quadratic(q: ArrayLike, k: ArrayLike, v: ArrayLike,
                               eps: float = 1e-8) -> ArrayLike:
    """The same attention in kernelized N x N form: ``A = phi(q) phi(k)^T``,
    ``o = A v / (rowsum(A) + eps)``."""
    qt, kt, vt = _prepare(q, k, v, eps)
    a = torch.relu(qt) @ torch.relu(kt).transpose(-1, -2)
    return (a @ vt) / (a.sum(dim=-1, keepdim=True) + eps)
