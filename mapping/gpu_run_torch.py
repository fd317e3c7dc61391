"""The operators without an :mod:`sw` kernel, run functionally in torch for
:mod:`mapping.gpu_run` (its docstring states the rules and bounds), and the pieces both share:
the outcome record, tensor conversions, seeded inputs, the float32 error bound ``gamma_n``."""


# isort: split
import math
from collections.abc import Callable
from functools import partial, reduce
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from golden import duo_attention as gold_duo
from golden.linear_attention import linear_attention as gold_linatt
from sw._runtime import kernel_device

from . import ir

__all__ = ["ATTN_TOL", "LINATT_TOL", "TORCH_TOL", "U", "Outcome", "arr", "gamma", "normal",
           "rand_qkv", "run_torch", "tens"]

U = 2.0**-24
ATTN_TOL = (1e-5, 0.0)        # tests/sw/test_duo_attention.py TOL
LINATT_TOL = (1e-5, 1e-4)     # tests/sw/test_linear_attention.py ATOL, RTOL
TORCH_TOL = (1e-5, 1.3e-6)    # torch.testing.assert_close float32 defaults
_EPS = 1e-6                    # norms


def rand_qkv(rng: np.random.Generator, b: int, hq: int, hkv: int, tq: int, tk: int,
         d: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return normal(rng, b, hq, tq, d), normal(rng, b, hkv, tk, d), normal(rng, b, hkv, tk, d)


class Outcome(NamedTuple):
    """What an op produced against its reference: toleranced pairs, exact pairs, the rule."""

    close: list[tuple[Any, Any, Any]]     # (got, ref, bound: scalar or per element)
    exact: list[tuple[str, Any, Any]]     # (what, got, ref): must be equal
    rule: str


def tens(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a)).to(kernel_device())


def arr(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def normal(rng: np.random.Generator, *shape: int, scale: float = 1.0) -> np.ndarray:
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def gamma(n: int) -> float:
    return n * U / (1 - n * U)



# --------------------------------------------------------------------------- torch ops


class _TorchCase(NamedTuple):
    fn: Callable[..., torch.Tensor]
    args: list[np.ndarray]
    k: int | None = 0          # contraction length; 0: element-wise tolerance; None: exact copy
    golden: Callable[..., torch.Tensor] | None = None    # reference instead of float64
    tol: tuple[float, float] = TORCH_TOL                # (atol, rtol) with golden / element-wise


def _rope(x: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    a, b = x.reshape(-1, 2).unbind(1)
    c, s = torch.cos(angle), torch.sin(angle)
    return torch.stack([a * c - b * s, a * s + b * c], 1).reshape(-1)


_CFG_SCALE = 4.5
_ELEMENTWISE: dict[str, tuple[Callable[..., torch.Tensor], int]] = {
    "copy": (torch.clone, 1), "relu": (torch.relu, 1), "silu": (F.silu, 1),
    "gelu": (lambda x: F.gelu(x, approximate="tanh"), 1),
    "softmax": (lambda x: torch.softmax(x, -1), 1),
    "add": (lambda *xs: reduce(torch.add, xs), 0), "mul": (lambda *xs: reduce(torch.mul, xs), 0),
    "gate": (lambda a, g: a * F.silu(g), 2), "residual": (lambda x, y, g: x + g * y, 3),
    "modulate": (lambda x, scale, shift: x * (1 + scale) + shift, 3),
    "cfg": (lambda c, u: u + _CFG_SCALE * (c - u), 2), "rope": (_rope, 2)}
"""Element-wise op -> (torch function, operands; 0: the op's ``inputs``). Operands are full-size
(per-channel gates and shifts too); ``rope`` rotates pairs by an angle per pair; ``softmax``
runs over all elements (the IR keeps no row length); ``cfg`` mixes at scale 4.5."""
_CASTS = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32,
          "fp8_e4m3": torch.float8_e4m3fn, "fp8_e5m2": torch.float8_e5m2}


def _torch_elementwise(op: ir.Elementwise, rng: np.random.Generator) -> _TorchCase:
    if op.op == "quantize":
        cast = _CASTS.get(op.out_fmt.name)
        if cast is None:
            raise ValueError(f"quantize {op.name!r} to {op.out_fmt.name}: no sw kernel and no "
                             f"torch cast for it")
        return _TorchCase(lambda x: x.to(cast).to(x.dtype), [normal(rng, op.elements)], None)
    fn, arity = _ELEMENTWISE[op.op]
    args = [normal(rng, op.elements) for _ in range(arity or op.inputs)]
    if op.op == "rope":
        if op.elements % 2:
            raise ValueError(f"rope {op.name!r}: {op.elements} elements are not whole pairs")
        args[1] = rng.uniform(-math.pi, math.pi, op.elements // 2).astype(np.float32)
    return _TorchCase(fn, args)


def _torch_norm(op: ir.Norm, rng: np.random.Generator) -> _TorchCase:
    f = op.features
    params = [normal(rng, f) for _ in range(op.affine * (2 if op.norm == "layer" else 1))]
    norm = F.layer_norm if op.norm == "layer" else F.rms_norm
    return _TorchCase(lambda x, *p: norm(x, (f,), *p, eps=_EPS),
                      [normal(rng, op.tokens, f), *params])


def _torch_contraction(op: ir.Linear | ir.Matmul | ir.Conv2d,
                       rng: np.random.Generator) -> _TorchCase:
    if isinstance(op, ir.Matmul):
        return _TorchCase(torch.bmm, [normal(rng, op.batch, op.m, op.k),
                                      normal(rng, op.batch, op.k, op.n, scale=op.k ** -0.5)], op.k)
    if isinstance(op, ir.Linear):
        fn, k, n, x, w = F.linear, op.k, op.n, (op.m, op.k), (op.n, op.k)
    else:
        ci = op.c_in // op.groups
        k, n, x, w = ci * op.kernel ** 2, op.c_out, (op.batch, op.c_in, op.h, op.w), (
            op.c_out, ci, op.kernel, op.kernel)
        fn = partial(_conv, op=op)
    args = [normal(rng, *x), normal(rng, *w, scale=k ** -0.5)]
    return _TorchCase(fn, args + ([normal(rng, n)] if op.bias else []), k)


def _conv(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None, *,
          op: ir.Conv2d) -> torch.Tensor:
    return F.conv2d(x, w, b, op.stride, op.pad, 1, op.groups)


def _torch_attention(op: ir.Attention, rng: np.random.Generator) -> _TorchCase:
    b, hq, hkv, d, tq, tk = op.batch, op.q_heads, op.kv_heads, op.head_dim, op.q_tokens, \
        op.kv_tokens
    g = hq // hkv
    p, j = torch.arange(tk - tq, tk)[:, None], torch.arange(tk)[None]
    hidden = (j > p) if op.causal else torch.zeros(tq, tk, dtype=torch.bool)
    if op.window is not None:
        hidden |= (j >= op.window[0]) & (p - j >= op.window[1])

    def fn(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        s = q @ k.repeat_interleave(g, 1).transpose(-1, -2) / math.sqrt(d)
        return torch.softmax(s.masked_fill(hidden, -math.inf), -1) @ v.repeat_interleave(g, 1)

    def ref(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        if not op.causal:
            return gold_duo.attend_visible(q.reshape(b, hkv, g * tq, d), k, v).reshape(q.shape)
        if op.window is not None:
            return gold_duo.streaming_attention(q, k, v, *op.window)
        return gold_duo.full_attention(q, k, v)

    return _TorchCase(fn, list(rand_qkv(rng, b, hq, hkv, tq, tk, d)), golden=ref, tol=ATTN_TOL)


def _torch_linatt(op: ir.LinearAttention, rng: np.random.Generator) -> _TorchCase:
    def fn(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        q, k = torch.relu(q), torch.relu(k)
        return (q @ (v.transpose(-1, -2) @ k).transpose(-1, -2)) / (
            q @ k.sum(-2).unsqueeze(-1) + 1e-8)

    q_k_v = rand_qkv(rng, op.batch, op.heads, op.heads, op.tokens, op.tokens, op.head_dim)
    return _TorchCase(fn, list(q_k_v), golden=gold_linatt, tol=LINATT_TOL)


def _kv_write(cache: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
    out = cache.clone()
    out[..., -new.shape[-2]:, :] = new
    return out


def _torch_copy(op: ir.KVCacheWrite | ir.KVCacheRead | ir.Embedding,
                rng: np.random.Generator) -> _TorchCase:
    if isinstance(op, ir.Embedding):
        return _TorchCase(F.embedding, [rng.integers(op.vocab, size=op.tokens),
                                        normal(rng, op.vocab, op.dim)], None)
    row = (2, op.batch, op.kv_heads)
    if isinstance(op, ir.KVCacheRead):
        return _TorchCase(torch.clone, [normal(rng, *row, op.tokens, op.head_dim)], None)
    return _TorchCase(_kv_write, [normal(rng, *row, op.cache_tokens, op.head_dim),
                                  normal(rng, *row, op.tokens, op.head_dim)], None)


_TORCH: dict[type, Callable[[Any, np.random.Generator], _TorchCase]] = {
    ir.Linear: _torch_contraction, ir.Matmul: _torch_contraction, ir.Conv2d: _torch_contraction,
    ir.Elementwise: _torch_elementwise, ir.Norm: _torch_norm, ir.Attention: _torch_attention,
    ir.LinearAttention: _torch_linatt, ir.KVCacheWrite: _torch_copy, ir.KVCacheRead: _torch_copy,
    ir.Embedding: _torch_copy}


def run_torch(op: ir.Op, rng: np.random.Generator) -> Outcome:
    if type(op) not in _TORCH:
        raise ValueError(f"no torch path for a {type(op).__name__}")
    case = _TORCH[type(op)](op, rng)

    def call(dtype: torch.dtype, f: Callable[[np.ndarray], np.ndarray] = np.asarray) -> Any:
        return arr(case.fn(*(torch.from_numpy(f(a)).to(dtype) if a.dtype.kind == "f"
                             else torch.from_numpy(a) for a in case.args)))

    got = call(torch.float32)
    atol, rtol = case.tol
    if case.golden is not None:
        ref = arr(case.golden(*(torch.from_numpy(a) for a in case.args)))
        return Outcome([(got, ref, atol + rtol * np.abs(ref))], [],
                        f"float32 vs golden: {atol:g} + {rtol:g}|ref| (the sw kernel's tests)")
    ref = call(torch.float64)
    if case.k is None:
        return Outcome([], [("copy", got, ref)], "a copy: exact")
    if case.k:
        return Outcome([(got, ref, gamma(case.k + 1) * call(torch.float64, np.abs))], [],
                        f"float32 vs float64: gamma_(K+1)(|x||w|+|b|), K={case.k} (Higham 3.5)")
    return Outcome([(got, ref, atol + rtol * np.abs(ref))], [],
                    f"float32 vs float64: {atol:g} + {rtol:g}|ref| (torch assert_close)")
