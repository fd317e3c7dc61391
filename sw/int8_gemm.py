"""int8 x int8 -> int32 GEMM in Triton, checked against :func:`golden.int_gemm.int_gemm`."""

from __future__ import annotations

from . import _runtime  # noqa: F401 - first: sets TRITON_INTERPRET before triton is imported

# isort: split
import torch
import triton
import triton.language as tl

from .arrays import ArrayLike, tensor_function

__all__ = ["int8_gemm"]

_BACKENDS = ("triton", "torch")


@triton.jit
def _int8_gemm_kernel(a_ptr, b_ptr, c_ptr, M, N, K,
                      stride_am, stride_ak, stride_bk, stride_bn, stride_cm, stride_cn,
                      BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    rk = tl.arange(0, BLOCK_K)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.int32)
    for k0 in range(0, K, BLOCK_K):
        kk = k0 + rk
        a = tl.load(a_ptr + rm[:, None] * stride_am + kk[None, :] * stride_ak,
                    mask=(rm[:, None] < M) & (kk[None, :] < K), other=0)
        b = tl.load(b_ptr + kk[:, None] * stride_bk + rn[None, :] * stride_bn,
                    mask=(kk[:, None] < K) & (rn[None, :] < N), other=0)
        acc += tl.dot(a, b, out_dtype=tl.int32)
    tl.store(c_ptr + rm[:, None] * stride_cm + rn[None, :] * stride_cn, acc,
             mask=(rm[:, None] < M) & (rn[None, :] < N))


@tensor_function("a", "b")
def int8_gemm(
    a: ArrayLike,
    b: ArrayLike,
    *,
    backend: str = "triton",
    block_m: int = 64,
    block_n: int = 64,
    block_k: int = 64,
) -> ArrayLike:
    """``a @ b`` for int8 (M, K) x (K, N) tensors, accumulated and returned in int32.

    The int32 accumulator wraps like the hardware's; callers that need a guarantee check the
    range with golden's ``int_gemm``. ``backend="torch"`` is the plain-torch path.
    """
    for name, t in (("a", a), ("b", b)):
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dtype != torch.int8:
            raise ValueError(f"{name} must be int8, got {t.dtype}")
        if t.dim() != 2:
            raise ValueError(f"{name} must be 2-D, got shape {tuple(t.shape)}")
    if a.shape[1] != b.shape[0]:
        raise ValueError(f"inner dimensions differ: a {tuple(a.shape)}, b {tuple(b.shape)}")
    if a.device != b.device:
        raise ValueError(f"a is on {a.device} but b is on {b.device}")
    if backend not in _BACKENDS:
        raise ValueError(f"backend must be one of {_BACKENDS}, got {backend!r}")
    for name, v in (("block_m", block_m), ("block_n", block_n), ("block_k", block_k)):
        if v < 16 or v & (v - 1):
            raise ValueError(f"{name} must be a power of two >= 16, got {v}")
    m, k = a.shape
    n = b.shape[1]
    if backend == "torch":
        return (a.to(torch.int64) @ b.to(torch.int64)).to(torch.int32)
    c = torch.empty((m, n), dtype=torch.int32, device=a.device)
    if m == 0 or n == 0:
        return c
    grid = (triton.cdiv(m, block_m), triton.cdiv(n, block_n))
    _int8_gemm_kernel[grid](a, b, c, m, n, k, a.stride(0), a.stride(1), b.stride(0), b.stride(1),
                            c.stride(0), c.stride(1),
                            BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_K=block_k)
    return c
