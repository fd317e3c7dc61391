"""The e2e run's GPU target (:func:`flows.e2e.run_e2e` with ``gpu=True``): the tiny model's
chain with its leaves on the :mod:`sw` Triton kernels (Triton's interpreter without a GPU,
:mod:`sw._runtime`), everything else in torch float32, a :class:`GpuRecord` per kernel call.

Errors are ``|got - ref|`` in float64, u = 2**-24 (the float32 unit roundoff),
``gamma_n = n u / (1 - n u)``; each record keeps the error and the bound at the element
nearest (or furthest past) its bound (:func:`flows.e2e_error.worst`). Per leaf (record
shapes in brackets):

* ``nn.Linear`` [(M, K, N)]: the accelerator run's W8A8 operands
  (:func:`flows.e2e.w8a8_operands`: rows of ``x`` and output channels of ``W`` symmetric
  int8), ``C = qa qw^T`` by ``sw.int8_gemm.int8_gemm``, which must equal
  :func:`golden.int_gemm.int_gemm` bit for bit (``bit_exact``); ``y = C s_a s_w^T + b`` by the
  accelerator run's float32 code (:func:`flows.e2e.w8a8_output`), so a GPU linear's output
  is the accelerator's (and golden's) on the same input, bit for bit. Error against the float
  linear: the W8A8 bound of :mod:`flows.e2e`. Tiles: the kernel's defaults on a GPU; in the
  interpreter ones covering the tiny operands (fewer programs, each run in Python).
* a pointwise ``nn.Conv2d`` [(B H W, C_in, C_out)]: the linear's path on its channels-last
  pixels (:func:`flows.e2e_conv.gpu_pointwise_conv`), the accelerator's output bit for bit.
* :class:`~mapping.torch_blocks.SVDQuantLinear` [(M, K, N)]: the two fused kernels,
  ``sw.svdquant.quantize_act`` (smooth 1: the leaf's activations are not smoothed; with
  ``act="uint4_g64"`` shifted by ``GELU_SHIFT``, unsigned) then ``w4a4_gemm_lora`` on the
  leaf's codes ``qweight``, scales ``wscale``, its branch ``(down, up) = mod.branch()`` (its
  LoRA concatenated; ``mod.down``, ``mod.up`` on leaves without the method) zero-padded to a
  rank ``R`` multiple of 16 (exact), and the epilogue bias ``e = fl32(b - [GELU_SHIFT
  sum_k w])``. The activation codes and scales must equal
  :func:`golden.svdquant_ops.quantize_int4`'s (``bit_exact``). Reference, as
  :mod:`flows.e2e_svdquant`'s: the leaf's float linear without rounding, ``y* = sum_g sx sw
  dot_g + e* + (x down^T) up^T`` (float64). Bound, from sw's (tests/sw/test_svdquant.py):
  ``gamma_{G+1} sum_g |sx sw dot_g|`` (the group GEMM, golden's ``fma=False`` order, G groups)
  + ``2 (K + 2) u (|x| |down|^T) |up|^T`` (``lora_act``) + ``u ((R + 2) T2 + 2 (|G| + T2 +
  |e|))``, ``T2 = |lora_act| |up|^T`` (the epilogue) + ``2 u |e|`` (``e``'s rounding) +
  ``2**-50 (K |xq| |w|^T + (K + R) |x| |down|^T |up|^T)`` (the float64 reference's own).
* :class:`~mapping.torch_attention.ReLULinearAttention` [(B, H, N, D)]:
  ``sw.linear_attention.linear_attention`` (the leaf's ``eps``) against
  :func:`golden.linear_attention.linear_attention`, ``<= 1e-5 + 1e-4 |ref|``
  (tests/sw/test_linear_attention.py, as :mod:`mapping.gpu_run`).
* :class:`~mapping.torch_attention.DuoAttention`, decode and prefill [(B, Hq, Hkv, C,
  context, D)]: the keys and values of every position ``0..context-1`` (retrieval heads: the
  leaf's past cache; streaming heads: its kept positions, zeros at the others, which no query
  sees; then the call's ``C`` tokens), the ``context - C`` earlier ones prefilled into a
  ``sw.duo_attention.DuoKVCache`` (zero queries, outputs dropped: the setup), then the call's
  queries (``decode_step``, or the cache's ``prefill`` of the chunk) as :mod:`mapping.gpu_run`
  does; against :func:`golden.duo_attention.duo_attention` over the whole sequence, ``<=
  1e-5`` (tests/sw/test_duo_attention.py).

A leaf shape the kernels do not take (linear attention of a head dim over
``sw.linear_attention.MAX_HEAD_DIM``; DuoAttention of a head dim not a power of two in
16..128) runs its torch forward and is listed (:meth:`GpuRunner.torch_kinds`).

**Launches.** A call counts the launches of the ``@triton.jit`` kernels it must launch (the
module attributes, wrapped for the call, as :mod:`mapping.gpu_run` does; the DuoAttention
setup is not counted): ``launches`` is 0 when one of them never launched, and such a record
fails. The wrapping is not thread-safe: one run at a time per process.

Measured in the interpreter (one CPU core's worth, lego_fused, engine "ref"): 0.3-0.8 s a
tiny model, tiny-flux1-dev 1.9 s (30 calls, 20 of them SVDQuant), tiny-vila-u 11 s (768
linear calls; its float, accelerator and golden runs together 6.4 s; about 1.7x longer with
the kernel's default tiles).

Layer: flows.
"""

from __future__ import annotations

import sw.duo_attention as duo  # first: sw._runtime sets TRITON_INTERPRET before triton loads

# isort: split
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

import sw.int8_gemm as i8
import sw.linear_attention as linatt
import sw.svdquant as svdq
import sw.svdquant_kernels as svdq_k
from golden import duo_attention as gold_duo
from golden.int_gemm import int_gemm
from golden.kv_cache import DuoCache
from golden.linear_attention import linear_attention as gold_linatt
from golden.svdquant_ops import (
    GELU_SHIFT,
    dequantize_int4,
    fold_act_shift,
    quantize_int4,
    w4a4_gemm,
)
from mapping.gpu_run import Counted, counting_launches
from mapping.torch_attention import DuoAttention, ReLULinearAttention
from mapping.torch_blocks import SVDQuantLinear
from sw._runtime import INTERPRETED, kernel_device

from .e2e_error import worst
from .e2e_w8a8 import w8a8_error, w8a8_operands, w8a8_output

__all__ = ["KERNELS", "GpuDuoCache", "GpuRecord", "GpuRunner", "gpu_duo_attention",
           "gpu_linear", "gpu_linear_attention", "gpu_svdquant"]

U = 2.0 ** -24
LINATT_TOL = (1e-5, 1e-4)       #: tests/sw/test_linear_attention.py ATOL, RTOL
ATTN_TOL = 1e-5                 #: tests/sw/test_duo_attention.py TOL
_RANK_ALIGN = 16                #: the SVDQuant kernels' rank multiple

KERNELS = {
    "linear": ("sw.int8_gemm.int8_gemm", ((i8, "_int8_gemm_kernel"),)),
    "svdquant": ("sw.svdquant.quantize_act+w4a4_gemm_lora",
                 ((svdq_k, "quant_int4_kernel"), (svdq_k, "w4a4_kernel"))),
    "linear_attention": ("sw.linear_attention.linear_attention",
                         ((linatt, "_vk_kernel"), (linatt, "_apply_kernel"))),
    "decode": ("sw.duo_attention.decode_step", ((duo, "_duo_attn_kernel"),)),
    "prefill": ("sw.duo_attention.prefill", ((duo, "_duo_attn_kernel"),)),
}
"""Leaf kind -> (the record's kernel name, the ``(module, attribute)`` kernels it launches)."""


@dataclass(frozen=True)
class GpuRecord:
    """One GPU kernel call (``name``: the module path, ``#n`` the call): ``kernel`` (an sw
    entry point), ``shape`` (module docstring), ``err`` and ``err_bound`` (at the element
    nearest its bound: :func:`flows.e2e_error.worst`), ``launches`` (0: a kernel the call
    needs never launched), ``bit_exact`` (linears: the int32 product
    equals golden's; SVDQuant: the activation codes and scales; None: no bit-exact part)."""

    name: str
    kernel: str
    shape: tuple[int, ...]
    err: float
    err_bound: float
    launches: int
    bit_exact: bool | None

    @property
    def passed(self) -> bool:
        """Launched, within its bound, and bit-exact where claimed."""
        return self.launches > 0 and self.err <= self.err_bound and \
            self.bit_exact is not False


def _counting(kind: str):
    """The kernels of ``KERNELS[kind]`` counted while the block runs
    (:func:`mapping.gpu_run.counting_launches`)."""
    return counting_launches(KERNELS[kind][1])


def _launches(counters: list[Counted]) -> int:
    """All launches of a call, 0 if one of its kernels never launched."""
    return sum(c.launches for c in counters) if all(c.launches for c in counters) else 0


def _np(t: torch.Tensor) -> np.ndarray:
    """A float32 numpy copy of tensor ``t`` (detached, on the CPU), in a new C-ordered
    buffer: canonical strides even along axes of size 1 (the DuoAttention kernel's launcher
    asserts equal strides of k and v)."""
    return t.detach().to(torch.float32).cpu().numpy().copy(order="C")


def _gamma(n: int) -> float:
    return n * U / (1 - n * U)


class GpuRunner:
    """The GPU run's state: its records, the call counts, the leaf kinds left in torch."""

    def __init__(self) -> None:
        self.records: list[GpuRecord] = []
        self.fallbacks: set[str] = set()
        self._calls: dict[str, int] = {}

    def call(self, path: str) -> str:
        """``path#n``, ``n`` the call of ``path`` (from 1)."""
        self._calls[path] = self._calls.get(path, 0) + 1
        return f"{path}#{self._calls[path]}"

    def install(self, model: torch.nn.Module) -> None:
        """Routes ``model``'s leaves (linears, SVDQuant, linear attention, DuoAttention) to
        their kernels (module docstring); the model must be a copy only this run uses."""
        kinds: tuple[tuple[type, Callable[..., torch.Tensor]], ...] = (
            (torch.nn.Linear, gpu_linear), (SVDQuantLinear, gpu_svdquant),
            (ReLULinearAttention, gpu_linear_attention), (DuoAttention, gpu_duo_attention))
        from .e2e_conv import gpu_pointwise_conv, is_pointwise

        for path, mod in model.named_modules():
            fn = next((f for t, f in kinds if isinstance(mod, t)), None)
            fn = gpu_pointwise_conv if fn is None and is_pointwise(mod) else fn
            if fn is not None:
                mod.forward = lambda *a, fn=fn, mod=mod, path=path: fn(mod, *a, self,
                                                                       self.call(path))

    def torch_kinds(self, model: torch.nn.Module) -> tuple[str, ...]:
        """The kinds of ``model``'s leaves this run left in torch (sorted)."""
        from .e2e_conv import is_pointwise

        on_gpu = (torch.nn.Linear, SVDQuantLinear, ReLULinearAttention, DuoAttention)
        kinds = {type(m).__name__ for m in model.modules()
                 if not isinstance(m, on_gpu) and not is_pointwise(m) and not list(m.children())}
        return tuple(sorted(kinds | self.fallbacks))


def _int8_blocks(m: int, k: int, n: int) -> dict[str, int]:
    """``int8_gemm``'s tiles: its defaults on a GPU; in the interpreter, where each program
    runs in Python, tiles covering the tiny model's operands (powers of two >= 16, at most
    64 rows, 128 columns and 128 of k: one or two programs a call)."""
    if not INTERPRETED:
        return {}

    def tile(x: int, cap: int) -> int:
        return min(cap, max(16, 1 << max(0, x - 1).bit_length()))

    return {"block_m": tile(m, 64), "block_k": tile(k, 128), "block_n": tile(n, 128)}


def gpu_linear(mod: torch.nn.Linear, x: torch.Tensor, runner: GpuRunner,
               name: str) -> torch.Tensor:
    """``mod(x)`` as the W8A8 GEMM on ``sw.int8_gemm`` (module docstring); a record."""
    a, w, bias, qa, sa, qw, sw = w8a8_operands(torch, mod, x)
    with _counting("linear") as counters:
        c = np.asarray(i8.int8_gemm(qa.astype(np.int8), np.ascontiguousarray(qw.T, np.int8),
                                    **_int8_blocks(*a.shape, w.shape[0])))
    gold = int_gemm(qa, qw.T)
    y = w8a8_output(c, sa, sw, bias)
    err, bound = w8a8_error(a, w, bias, sa, sw, y)
    (m, k), n = a.shape, w.shape[0]
    runner.records.append(GpuRecord(name, KERNELS["linear"][0], (m, k, n), err, bound,
                                    _launches(counters), bool(np.array_equal(c, gold))))
    out = torch.from_numpy(np.ascontiguousarray(y)).reshape(*x.shape[:-1], n)
    return out.to(x.dtype)


def _branch(mod: SVDQuantLinear) -> tuple[np.ndarray, np.ndarray]:
    """The leaf's float32 branch ``(down (r, K), up (N, r))``: ``mod.branch()`` (its LoRA
    concatenated) where the leaf has it, else ``mod.down``, ``mod.up``."""
    get = getattr(mod, "branch", None)
    down, up = get() if callable(get) else (mod.down, mod.up)
    return _np(down), _np(up)


def _padded(down: np.ndarray, up: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``down``, ``up`` zero-padded to a rank multiple of 16 (exact)."""
    r = down.shape[0]
    rp = -(-r // _RANK_ALIGN) * _RANK_ALIGN
    d = np.zeros((rp, down.shape[1]), np.float32)
    u = np.zeros((up.shape[0], rp), np.float32)
    d[:r], u[:, :r] = down, up
    return d, u


def _svdq_bound(x: np.ndarray, codes: tuple[np.ndarray, ...], signed: bool,
                la: np.ndarray, branch: tuple[np.ndarray, np.ndarray], e64: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
    """(the float64 reference ``y*``, its bound per element) of an SVDQuant call (module
    docstring): ``codes`` golden's ``(qx, sx, qw, sw)``, ``la`` the kernel's ``lora_act``,
    ``branch`` padded, ``e64`` the epilogue bias in float64."""
    qx, sx, qw, sw = codes
    (m, k), n = x.shape, qw.shape[0]
    ng = sx.shape[1]
    g = k // ng
    dots = np.einsum("mgk,ngk->mng", qx.reshape(m, ng, g).astype(np.int64),
                     qw.reshape(n, ng, g).astype(np.int64))
    terms = np.abs(dots * sx.astype(np.float64)[:, None, :] * sw.astype(np.float64)[None])
    gemm = w4a4_gemm(qx, sx, qw, sw, g, act_signed=signed).astype(np.float64)
    xq, w = dequantize_int4(qx, sx, g), dequantize_int4(qw, sw, g)
    down, up = (b.astype(np.float64) for b in branch)
    x64, e = x.astype(np.float64), np.abs(e64.astype(np.float32).astype(np.float64))
    t1_up = (np.abs(x64) @ np.abs(down).T) @ np.abs(up).T
    t2 = np.abs(la.astype(np.float64)) @ np.abs(up).T
    r = down.shape[0]
    bound = (_gamma(ng + 1) * terms.sum(-1) + 2 * (k + 2) * U * t1_up
             + U * ((r + 2) * t2 + 2 * (np.abs(gemm) + t2 + e)) + 2 * U * e
             + 2.0 ** -50 * (k * (np.abs(xq) @ np.abs(w).T) + (k + r) * t1_up))
    return xq @ w.T + e64 + (x64 @ down.T) @ up.T, bound


def gpu_svdquant(mod: SVDQuantLinear, x: torch.Tensor, runner: GpuRunner,
                 name: str) -> torch.Tensor:
    """``mod(x)`` on ``sw.svdquant``'s two fused kernels (module docstring); a record.
    ``ValueError`` for an unsigned leaf's input below ``-GELU_SHIFT``."""
    k, n, g = mod.in_features, mod.out_features, mod.group
    x2 = _np(x).reshape(-1, k)
    signed = mod.act == "int4_g64"
    if not signed and x2.size and x2.min() < -GELU_SHIFT:
        raise ValueError(f"an unsigned (uint4_g64) SVDQuant leaf got an input {x2.min()} "
                         f"below -GELU_SHIFT = {-GELU_SHIFT}")
    down, up = _padded(*_branch(mod))
    qw = mod.qweight.detach().cpu().numpy().reshape(n, k).astype(np.int8)
    sw = _np(mod.wscale).reshape(n, k // g)
    b = np.zeros(n) if mod.bias is None else _np(mod.bias).astype(np.float64)
    e64 = b if signed else fold_act_shift(b, dequantize_int4(qw, sw, g), GELU_SHIFT)
    e = e64.astype(np.float32)
    with _counting("svdquant") as counters:
        codes, sx, la = svdq.quantize_act(x2, np.ones(k, np.float32), down,
                                          act_unsigned=not signed)
        y = np.asarray(svdq.w4a4_gemm_lora(codes, sx, svdq.pack_int4(qw), sw, la, up, e,
                                           act_unsigned=not signed))
    x_a = x2 if signed else (x2 + np.float32(GELU_SHIFT)).astype(np.float32)
    qx, sx_gold = quantize_int4(x_a, g, signed=signed)
    exact = bool(np.array_equal(np.asarray(svdq.unpack_int4(codes, signed=signed)), qx)
                 and np.array_equal(np.asarray(sx), sx_gold))
    want, bound = _svdq_bound(x2, (qx, sx_gold, qw, sw), signed, np.asarray(la), (down, up),
                              e64)
    err, at = worst(np.abs(y.astype(np.float64) - want), bound)
    runner.records.append(GpuRecord(name, KERNELS["svdquant"][0], (x2.shape[0], k, n), err,
                                    at, _launches(counters), exact))
    return torch.from_numpy(np.ascontiguousarray(y)).reshape(*x.shape[:-1], n).to(x.dtype)


def gpu_linear_attention(mod: ReLULinearAttention, q: torch.Tensor, k: torch.Tensor,
                         v: torch.Tensor, runner: GpuRunner, name: str) -> torch.Tensor:
    """``mod(q, k, v)`` on ``sw.linear_attention`` (module docstring); a record. Head dims
    over the kernel's maximum run the leaf's torch forward."""
    if max(q.shape[-1], v.shape[-1]) > linatt.MAX_HEAD_DIM:
        runner.fallbacks.add(type(mod).__name__)
        return type(mod).forward(mod, q, k, v)
    qn, kn, vn = _np(q), _np(k), _np(v)
    with _counting("linear_attention") as counters:
        out = np.asarray(linatt.linear_attention(qn, kn, vn, mod.eps))
    ref = np.asarray(gold_linatt(qn, kn, vn, mod.eps), np.float64)
    atol, rtol = LINATT_TOL
    err, bound = worst(np.abs(out - ref), atol + rtol * np.abs(ref))
    runner.records.append(GpuRecord(name, KERNELS["linear_attention"][0], tuple(q.shape),
                                    err, bound, _launches(counters), None))
    return torch.from_numpy(out).to(q.dtype)


def _sequence(mod: DuoAttention, k: np.ndarray, v: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
    """Keys and values (B, Hkv, context, D) of every position (module docstring)."""
    b, hkv, c, d = k.shape
    r, ctx = mod.retrieval, mod.context
    past = ctx - c
    seq = []
    for t, new in (("k", k), ("v", v)):
        full = np.zeros((b, hkv, ctx, d), np.float32)
        full[:, :r, :past] = _np(getattr(mod, f"{t}_retrieval"))
        kept = _np(getattr(mod, f"{t}_streaming"))
        full[:, r:, mod.stream_pos.numpy()[:kept.shape[2]]] = kept
        full[:, :, past:] = new
        seq.append(full)
    return seq[0], seq[1]


def gpu_duo_attention(mod: DuoAttention, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                      pos: int, runner: GpuRunner, name: str) -> torch.Tensor:
    """``mod(q, k, v, pos)`` on ``sw.duo_attention`` (module docstring); a record. Head dims
    the kernel does not take run the leaf's torch forward; ``ValueError`` for a call the leaf
    was not built for."""
    b, hq, c, d = q.shape
    if pos != mod.context - mod.tokens or c != mod.tokens:
        raise ValueError(f"DuoAttention built for {mod.tokens} tokens at {mod.context}, "
                         f"called with {c} at {pos}")
    if d not in (16, 32, 64, 128):
        runner.fallbacks.add(type(mod).__name__)
        return type(mod).forward(mod, q, k, v, pos)
    qn, kn, vn = _np(q), _np(k), _np(v)
    ks, vs = _sequence(mod, kn, vn)
    flags = [h < mod.retrieval for h in range(mod.kv_heads)]
    sink, recent = mod.window
    if pos:
        _, cache = duo.prefill(np.zeros((b, hq, pos, d), np.float32),
                               np.ascontiguousarray(ks[:, :, :pos]),
                               np.ascontiguousarray(vs[:, :, :pos]), flags, sink, recent)
    else:
        cache = duo.DuoKVCache(b, flags, d, sink, recent, device=kernel_device())
    kind = "decode" if c == 1 else "prefill"
    with _counting(kind) as counters:
        out = np.asarray(duo.decode_step(cache, qn, kn, vn) if c == 1
                         else cache.prefill(qn, kn, vn))
    ref = np.asarray(gold_duo.duo_attention(qn, ks, vs, flags, sink, recent), np.float64)
    err, bound = worst(np.abs(out - ref), np.float64(ATTN_TOL))
    runner.records.append(GpuRecord(name, KERNELS[kind][0], (b, hq, mod.kv_heads, c,
                                                             mod.context, d),
                                    err, bound, _launches(counters), None))
    return torch.from_numpy(out).to(q.dtype)


class GpuDuoCache:
    """A generating layer's DuoAttention (:mod:`flows.e2e_generate`) on one
    ``sw.duo_attention.DuoKVCache`` kept across the calls (a chunk: the cache's ``prefill``;
    one token: ``decode_step``), beside a :class:`golden.kv_cache.DuoCache` fed the same
    inputs: a record per call (shape (B, Hq, Hkv, C, context, D)) against golden's outputs,
    ``<= 1e-5`` (tests/sw/test_duo_attention.py), its launches counted."""

    def __init__(self, runner: GpuRunner, retrieval: list[bool], head_dim: int, sink: int,
                 recent: int, path: str) -> None:
        self.runner, self.path = runner, path
        self.cache = duo.DuoKVCache(1, retrieval, head_dim, sink, recent,
                                    device=kernel_device())
        self.gold = DuoCache(1, retrieval, head_dim, sink, recent)

    def __call__(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        qn, kn, vn = _np(q), _np(k), _np(v)
        b, hq, c, d = qn.shape
        kind = "decode" if c == 1 else "prefill"
        with _counting(kind) as counters:
            out = np.asarray(duo.decode_step(self.cache, qn, kn, vn) if c == 1
                             else self.cache.prefill(qn, kn, vn))
        ref = np.asarray(self.gold.step(qn, kn, vn), np.float64)
        err, bound = worst(np.abs(out - ref), np.float64(ATTN_TOL))
        self.runner.records.append(GpuRecord(
            self.runner.call(self.path), KERNELS[kind][0],
            (b, hq, kn.shape[1], c, self.cache.length, d), err, bound, _launches(counters),
            None))
        return torch.from_numpy(np.ascontiguousarray(out, np.float32)).to(q.dtype)
