"""The GPU target run functionally: every operator of a :class:`~mapping.ir.ModelGraph` on the
:mod:`sw` Triton kernel :func:`mapping.gpu_cost.gpu_cost` names for it (Triton's interpreter
without a GPU, see :mod:`sw._runtime`), each checked against a float reference.

:func:`run_on_gpu_kernels` visits every operator once (per ``"stage.op"``, not per repeat),
draws inputs of its shapes from ``numpy.random.default_rng([seed, crc32("stage.op")])`` and
returns one :class:`OpRun` per operator, in graph order. Deterministic for a seed (``wall_s``
aside). Errors are ``|got - ref|``, float64; u = 2**-24 (float32 unit roundoff).

**Triton** (``ran == "triton"``; sources of the bounds in brackets):

* quantize ops, ``sw.svdquant.quantize_act`` / ``quantize_act_nvfp4``: x of the consuming
  Linear's (m, k) (the stage's ``<linear>`` after ``<linear>_quant``; with none, rows of one
  group and rank 0), smooth and lora_down of that layer. Codes, scales (and the NVFP4 tensor
  scale) bit-exact against :func:`golden.svdquant_ops.quantize_int4` /
  :func:`golden.nvfp4.quantize_nvfp4`; ``lora_act <= 2 (K + 2) u |x / smooth| |down|^T``
  [tests/sw/test_svdquant.py, module docstring].
* W4A4 / NVFP4 linears, ``w4a4_gemm_lora`` / ``nvfp4_gemm_lora``: a layer from
  :func:`golden.svdquant.quantize_linear` (alpha 0.5, rank ``min(rank, n, k)`` zero-padded to
  a multiple of 16, exact, as :func:`sw.svdquant.w4a4_linear` does) and golden's input codes;
  against the golden GEMM (bit-exact order) ``+ lora_act up^T + bias`` in float64,
  ``<= u ((r + 2) T2 + 2 (|G| + T2 + |b|))``, ``T2 = |lora_act| |up|^T`` [same file].
* int8 linears and matmuls, ``sw.int8_gemm.int8_gemm``: operands from
  :func:`golden.int_gemm.random_operands`, the int32 product equal to
  :func:`golden.int_gemm.int_gemm` [tests/sw/test_int8_gemm.py]. Only the product: an int8
  linear's bias is an epilogue outside the kernel and is not run.
* causal attention, ``sw.duo_attention.decode_step`` / ``prefill``: the ``kv - q`` earlier
  tokens prefilled into a ``DuoKVCache`` (``sw.duo_attention.prefill``), then the op's queries;
  against :func:`golden.duo_attention.duo_attention` (retrieval heads without a window,
  streaming heads with it), ``<= 1e-5`` [tests/sw/test_duo_attention.py, TOL].
* ``sw.linear_attention.linear_attention``: against :func:`golden.linear_attention.
  linear_attention`, ``<= 1e-5 + 1e-4 |ref|`` [tests/sw/test_linear_attention.py].

**Torch** (``ran == "torch"``, ``kernel == "none"``: no sw kernel): float32 torch on the CPU
(a GPU would run the IR's 16-bit formats through cuBLAS / PyTorch) against the same torch op in
float64, which checks precision, not semantics. Contractions (linear, matmul, conv2d):
``gamma_{K+1} (|x| |w| + |b|)``, ``gamma_n = n u / (1 - n u)`` [Higham, Accuracy and Stability
of Numerical Algorithms, 2nd ed., eq. (3.5)]; norms and element-wise ops:
``torch.testing.assert_close``'s float32 defaults ``1e-5 + 1.3e-6 |ref|``; embeddings, KV-cache
writes and reads, casts: copies, exact. Attention and linear attention the kernels do not take
(non-causal, or an unsupported head_dim) are checked against golden instead, at the kernels'
bounds above.

**Honesty**: a Triton op counts the launches of the ``@triton.jit`` kernels its sw wrapper
launches (the module attributes, wrapped for the call, as tests/sw's ``no_launch`` fixture patches
them); an op with a kernel that never launched fails. Any exception (a shape the kernel does not
take: ``ValueError`` from the wrapper) is a failed :class:`OpRun` with the message as reason.
The wrapping lasts one call and is not thread-safe: run one graph at a time per process.

Measured run times: :func:`run_on_gpu_kernels`.
"""

from __future__ import annotations

import sw.duo_attention as duo  # first: sw._runtime sets TRITON_INTERPRET before triton loads

# isort: split
import math
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import ml_dtypes
import numpy as np
import torch
import torch.nn.functional as F

import sw.int8_gemm as i8
import sw.linear_attention as linatt
import sw.svdquant as svdq
import sw.svdquant_kernels as svdq_k
from golden import duo_attention as gold_duo
from golden.int_gemm import int_gemm, random_operands
from golden.linear_attention import linear_attention as gold_linatt
from golden.nvfp4 import NVFP4Tensor, nvfp4_gemm, quantize_nvfp4
from golden.svdquant import GELU_SHIFT, SVDQuantLinear, quantize_linear
from golden.svdquant_ops import quantize_int4, w4a4_gemm

from . import ir
from .gpu_cost import gpu_cost
from .gpu_run_torch import (
    ATTN_TOL,
    LINATT_TOL,
    Outcome,
    U,
    arr,
    normal,
    rand_qkv,
    run_torch,
    tens,
)

__all__ = ["Counted", "OpRun", "counting_launches", "run_on_gpu_kernels", "run_op"]



@dataclass(frozen=True)
class OpRun:
    """One operator run once. ``kernel``: gpu_cost's kernel field ("none": ``ran == "torch"``);
    ``max_abs_error``: the largest toleranced error; ``error_bound``: the bound at the element
    nearest (or furthest past) its bound, ``worst_ratio`` that element's error / bound; bit-exact
    parts must match (bound 0). ``passed``: every part within its bound and every kernel
    launched; else ``reason`` says why. ``rule``: the bound and its source; ``launches``: Triton
    launches seen; ``repeat``: the stage's repeat count (the op ran once)."""

    op: str
    kind: str
    kernel: str
    ran: str
    repeat: int
    max_abs_error: float
    error_bound: float
    worst_ratio: float
    passed: bool
    reason: str = ""
    rule: str = ""
    launches: int = 0
    wall_s: float = field(default=0.0, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able fields."""
        return asdict(self)


# --------------------------------------------------------------------------- launch counting


class Counted:
    """Stands in for a ``@triton.jit`` kernel: counts launches (``kernel[grid]``), then
    launches it."""

    def __init__(self, kernel: Any) -> None:
        self.kernel, self.launches = kernel, 0

    def __getitem__(self, grid: Any) -> Any:
        self.launches += 1
        return self.kernel[grid]


@contextmanager
def counting_launches(points: tuple[tuple[Any, str], ...]) -> Iterator[list[Counted]]:
    """The ``@triton.jit`` kernels at ``points`` (``(module, attribute)``) replaced by
    :class:`Counted` while the block runs (not thread-safe), then restored."""
    saved = [(mod, attr, getattr(mod, attr)) for mod, attr in points]
    counters = [Counted(kernel) for _, _, kernel in saved]
    for (mod, attr, _), c in zip(saved, counters, strict=True):
        setattr(mod, attr, c)
    try:
        yield counters
    finally:
        for mod, attr, kernel in saved:
            setattr(mod, attr, kernel)


# --------------------------------------------------------------------------- SVDQuant


def _consumer(op: ir.Elementwise, stage: ir.Stage | None) -> ir.Linear:
    """The Linear whose input the quantize ``op`` makes (module docstring)."""
    ops = stage.ops if stage is not None else ()
    later = ops[ops.index(op) + 1:] if op in ops else ops
    found = [o for o in later if isinstance(o, ir.Linear) and o.act_fmt == op.out_fmt
             and o.m * o.k == op.elements]
    named = [o for o in found if o.name == op.name.removesuffix("_quant")]
    if named or found:
        return (named or found)[0]
    g = op.out_fmt.group
    if op.elements % g:
        raise ValueError(f"quantize {op.name!r}: {op.elements} elements are not rows of whole "
                         f"{g}-groups (the kernel needs K a multiple of {g}) and no Linear "
                         f"consumes it")
    weight = "nvfp4" if op.out_fmt.name == "nvfp4" else "int4_g64"
    return ir.Linear(op.name, op.elements // g, g, g, op.out_fmt, weight)


def _svdq_layer(op: ir.Linear, rng: np.random.Generator
                ) -> tuple[SVDQuantLinear, np.ndarray, np.ndarray, np.ndarray]:
    """(golden layer of ``op``'s shape, its input x (m, k), down (R, k), up (n, R)), the branch
    zero-padded to R = the op's rank rounded up to 16."""
    unsigned = op.act_fmt.kind == "uint"
    x = normal(rng, op.m, op.k, scale=2.0)
    x[:, :: max(1, op.k // 5)] *= 10                       # outlier channels
    if unsigned:                                           # post-GELU: x >= -GELU_SHIFT
        x = arr(F.gelu(torch.from_numpy(x), approximate="tanh"))
    w = normal(rng, op.n, op.k, scale=op.k ** -0.5)
    bias = normal(rng, op.n) if op.bias else None
    fmt = "nvfp4" if op.act_fmt.name == "nvfp4" else "int4"
    layer = quantize_linear(w, x, rank=min(op.rank, op.n, op.k), bias=bias, alpha=0.5,
                            act_unsigned=unsigned, fmt=fmt)
    r = -(-op.rank // 16) * 16
    down, up = np.zeros((r, op.k), np.float32), np.zeros((op.n, r), np.float32)
    down[:layer.rank], up[:, :layer.rank] = layer.lora_down, layer.lora_up
    return layer, x, down, up


def _quantize(op: ir.Op, stage: ir.Stage | None, rng: np.random.Generator) -> Outcome:
    assert isinstance(op, ir.Elementwise)
    lin = _consumer(op, stage)
    layer, x, down, _ = _svdq_layer(lin, rng)
    xs, smooth = x / layer.smooth, layer.smooth
    if lin.act_fmt.name == "nvfp4":
        codes, scales, t, la = svdq.quantize_act_nvfp4(tens(x), tens(smooth), tens(down))
        ref = quantize_nvfp4(xs)
        exact = [("codes", arr(svdq.unpack_int4(codes, signed=False)), ref.codes),
                 ("tensor scale", np.float32(t), np.float32(ref.global_scale))]
        ref_scales = ref.scales.astype(np.float32)
    else:
        signed = lin.act_fmt.kind != "uint"
        codes, scales, la = svdq.quantize_act(tens(x), tens(smooth), tens(down),
                                              act_unsigned=not signed)
        u = xs if signed else (x + np.float32(GELU_SHIFT)) / smooth
        ref_codes, ref_scales = quantize_int4(u, 64, signed=signed)
        exact = [("codes", arr(svdq.unpack_int4(codes, signed=signed)), ref_codes)]
    exact.append(("scales", arr(scales), ref_scales))
    xs64, down64 = xs.astype(np.float64), down.astype(np.float64)
    bound = 2 * (lin.k + 2) * U * (np.abs(xs64) @ np.abs(down64).T)
    return Outcome([(arr(la), xs64 @ down64.T, bound)], exact,
                    "codes/scales bit-exact vs golden; lora_act <= 2(K+2)u|x/s||down|^T "
                    "(tests/sw/test_svdquant.py)")


def _svdq_gemm(op: ir.Op, stage: ir.Stage | None, rng: np.random.Generator) -> Outcome:
    assert isinstance(op, ir.Linear)
    layer, x, down, up = _svdq_layer(op, rng)
    la = (x / layer.smooth) @ down.T                       # float32, as golden forms it
    bias = layer.epilogue_bias if op.bias or layer.act_unsigned else None
    qin = layer.quantize_input(x)
    cw = svdq.pack_int4(tens(layer.qweight))
    b_t = None if bias is None else tens(bias)
    if isinstance(qin, NVFP4Tensor):
        wq = NVFP4Tensor(layer.qweight, layer.wscales.astype(ml_dtypes.float8_e4m3fn),
                         layer.wglobal)
        y = svdq.nvfp4_gemm_lora(svdq.pack_int4(tens(qin.codes)),
                                 tens(qin.scales.astype(np.float32)), qin.global_scale, cw,
                                 tens(layer.wscales), layer.wglobal, tens(la), tens(up), b_t)
        g = nvfp4_gemm(qin, wq)
    else:
        qx, sx = qin
        y = svdq.w4a4_gemm_lora(svdq.pack_int4(tens(qx)), tens(sx), cw, tens(layer.wscales),
                                tens(la), tens(up), b_t, act_unsigned=layer.act_unsigned)
        g = w4a4_gemm(qx, sx, layer.qweight, layer.wscales, 64, act_signed=not layer.act_unsigned)
    g64, la64, up64 = (a.astype(np.float64) for a in (g, la, up))
    b64 = np.zeros(op.n) if bias is None else bias.astype(np.float64)
    t2 = np.abs(la64) @ np.abs(up64).T
    bound = U * ((up.shape[1] + 2) * t2 + 2 * (np.abs(g64) + t2 + np.abs(b64)))
    return Outcome([(arr(y), g64 + la64 @ up64.T + b64, bound)], [],
                    "vs golden GEMM + branch + bias: u((r+2)T2 + 2(|G|+T2+|b|)) "
                    "(tests/sw/test_svdquant.py)")


# --------------------------------------------------------------------------- other kernels


def _int8(op: ir.Op, stage: ir.Stage | None, rng: np.random.Generator) -> Outcome:
    assert isinstance(op, ir.Linear | ir.Matmul)
    exact = []
    for i in range(op.batch if isinstance(op, ir.Matmul) else 1):
        a, b = random_operands(op.m, op.k, op.n, seed=int(rng.integers(2**31)))
        c = i8.int8_gemm(tens(a.astype(np.int8)), tens(b.astype(np.int8)))
        exact.append((f"int32 product {i}", arr(c), int_gemm(a, b)))
    return Outcome([], exact, "bit-exact vs golden.int_gemm (tests/sw/test_int8_gemm.py)")




def _duo(op: ir.Op, stage: ir.Stage | None, rng: np.random.Generator) -> Outcome:
    assert isinstance(op, ir.Attention)
    tq, tk, hkv = op.q_tokens, op.kv_tokens, op.kv_heads
    q, k, v = (tens(a) for a in rand_qkv(rng, op.batch, op.q_heads, hkv, tk, tk, op.head_dim))
    flags = [op.window is None] * hkv
    sink, recent = op.window or (0, 1)                    # unused by retrieval heads
    ref = gold_duo.duo_attention(q.cpu(), k.cpu(), v.cpu(), flags, sink, recent)[:, :, tk - tq:]
    p = tk - tq
    if p:
        _, cache = duo.prefill(q[:, :, :p], k[:, :, :p], v[:, :, :p], flags, sink, recent)
    else:
        cache = duo.DuoKVCache(op.batch, flags, op.head_dim, sink, recent, device=q.device)
    rest = (q[:, :, p:], k[:, :, p:], v[:, :, p:])
    if tq == 1:
        out = duo.decode_step(cache, *rest)
    else:
        out = cache.prefill(*rest) if p else duo.prefill(*rest, flags, sink, recent)[0]
    return Outcome([(arr(out), arr(ref), ATTN_TOL[0])], [],
                    "<= 1e-5 vs golden.duo_attention (tests/sw/test_duo_attention.py)")


def _linatt(op: ir.Op, stage: ir.Stage | None, rng: np.random.Generator) -> Outcome:
    assert isinstance(op, ir.LinearAttention)
    q, k, v = (tens(a) for a in rand_qkv(rng, op.batch, op.heads, op.heads, op.tokens, op.tokens,
                                   op.head_dim))
    out, ref = arr(linatt.linear_attention(q, k, v)), arr(gold_linatt(q.cpu(), k.cpu(), v.cpu()))
    atol, rtol = LINATT_TOL
    return Outcome([(out, ref, atol + rtol * np.abs(ref))], [],
                    "<= 1e-5 + 1e-4|ref| vs golden (tests/sw/test_linear_attention.py)")


_KERNELS: dict[str, tuple[Callable[[ir.Op, ir.Stage | None, np.random.Generator], Outcome],
                          tuple[tuple[Any, str], ...]]] = {
    "sw.svdquant.quantize_act": (_quantize, ((svdq_k, "quant_int4_kernel"),)),
    "sw.svdquant.quantize_act_nvfp4": (_quantize, ((svdq_k, "quant_nvfp4_kernel"),)),
    "sw.svdquant.w4a4_gemm_lora": (_svdq_gemm, ((svdq_k, "w4a4_kernel"),)),
    "sw.svdquant.nvfp4_gemm_lora": (_svdq_gemm, ((svdq_k, "nvfp4_kernel"),)),
    "sw.int8_gemm.int8_gemm": (_int8, ((i8, "_int8_gemm_kernel"),)),
    "sw.duo_attention.decode_step": (_duo, ((duo, "_duo_attn_kernel"),)),
    "sw.duo_attention.prefill": (_duo, ((duo, "_duo_attn_kernel"),)),
    "sw.linear_attention.linear_attention": (
        _linatt, ((linatt, "_vk_kernel"), (linatt, "_apply_kernel"))),
}
"""Kernel name (gpu_cost's) -> (runner, the ``(module, attribute)`` kernels it launches)."""


# --------------------------------------------------------------------------- driver


def _judge(out: Outcome) -> tuple[float, float, float, str]:
    """(max abs error, bound at the worst element, its error / bound, reason or "")."""
    why = []
    for what, got, ref in out.exact:
        g, r = np.asarray(got), np.asarray(ref)
        if g.shape != r.shape or not np.array_equal(g, r):
            n = f"shape {g.shape}" if g.shape != r.shape else \
                f"{np.count_nonzero(g != r)} of {g.size} elements"
            why.append(f"{what}: {n} differ from the reference (bit-exact expected)")
    err_max, bound, ratio = 0.0, 0.0, 0.0
    for got, ref, lim in out.close:
        g, r = np.asarray(got, np.float64), np.asarray(ref, np.float64)
        if g.shape != r.shape:
            why.append(f"output shape {g.shape} != reference shape {r.shape}")
            err_max, ratio = math.inf, math.inf
            continue
        err = np.abs(g - r)
        err = np.where(np.isnan(err), math.inf, err)
        lim = np.broadcast_to(np.asarray(lim, np.float64), err.shape)
        with np.errstate(divide="ignore", invalid="ignore"):
            rat = np.where(err == 0, 0.0, err / lim)
        if rat.size:
            i = int(np.argmax(rat))
            if rat.flat[i] >= ratio:
                ratio, bound = float(rat.flat[i]), float(lim.flat[i])
            err_max = max(err_max, float(err.max()))
    if ratio > 1:
        why.append(f"error {err_max:.3g} past its bound: {ratio:.3g} x the bound {bound:.3g} "
                   f"at the worst element")
    return err_max, bound, ratio, "; ".join(why)


def run_op(op: ir.Op, stage: ir.Stage | None = None, *, seed: int = 0,
           device: str = "RTX4090-laptop") -> OpRun:
    """Run ``op`` (of ``stage``: names it ``"stage.op"`` and shapes a quantize op from its
    consumer) once on the kernel ``gpu_cost(op, device)`` names, or in torch (module docstring).
    ``ValueError`` for a negative or non-int ``seed`` or an unknown device; a failure of the op
    itself is a failed :class:`OpRun`, never an exception."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    name = op.name if stage is None else f"{stage.name}.{op.name}"
    kernel = gpu_cost(op, device).kernel
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    start = time.perf_counter()
    outcome, launches, reason = None, 0, ""
    try:
        if kernel == "none":
            outcome = run_torch(op, rng)
        elif kernel not in _KERNELS:
            raise ValueError(f"no runner for kernel {kernel!r}")
        else:
            runner, points = _KERNELS[kernel]
            with counting_launches(points) as counters:
                outcome = runner(op, stage, rng)
            launches = sum(c.launches for c in counters)
            idle = [attr for (_, attr), c in zip(points, counters, strict=True) if not c.launches]
            reason = f"Triton kernel {', '.join(idle)} never launched" if idle else ""
    except Exception as e:  # reported, not raised: the op failed on its kernel
        reason = f"{type(e).__name__}: {e}"
    err, bound, ratio, why = _judge(outcome) if outcome else (math.inf, 0.0, math.inf, "")
    reason = "; ".join(r for r in (reason, why) if r)
    return OpRun(name, op.kind, kernel, "torch" if kernel == "none" else "triton",
                 1 if stage is None else stage.repeat, err, bound, ratio, not reason, reason,
                 outcome.rule if outcome else "", launches, time.perf_counter() - start)


def run_on_gpu_kernels(graph: ir.ModelGraph, *, seed: int = 0,
                       device: str = "RTX4090-laptop") -> list[OpRun]:
    """Every operator of ``graph`` once (per ``"stage.op"``), in graph order, by
    :func:`run_op`: the GPU target functional where every run has ``passed``. ``ValueError``
    for a non-graph, a bad seed or an unknown device; op failures are reported, not raised.

    Measured on one CPU core (interpreter, default seed, imports ~1.4 s not counted): tiny-flux1-dev
    0.6-1.6 s (72 ops, 20 on Triton), tiny-sana-0.6b / -1.6b ~0.1 s (34, 1), tiny-llama3-8b-duo /
    tiny-llama2-7b-duo 0.3-0.5 s (17, 2), tiny-vila-u 1.9-2.5 s (41, 8: decode attention
    prefills its cache first). Full-size models are out of the interpreter's reach."""
    if not isinstance(graph, ir.ModelGraph):
        raise ValueError(f"graph must be a ModelGraph, got {type(graph).__name__}")
    return [run_op(op, stage, seed=seed, device=device) for stage, op in graph.walk()]
