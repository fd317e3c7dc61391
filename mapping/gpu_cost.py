"""What an IR operator costs on a GPU: a roofline over :data:`sw.roofline.DEVICES`
(:func:`gpu_cost`) and a whole :class:`~mapping.ir.ModelGraph` summed (:func:`gpu_model_cost`),
shaped like :mod:`mapping.accel_cost` so a mapper can put both targets side by side.

**Time** ``= max(compute_s, memory_s)`` per operator, a graph the sum over its operators times
their stage's ``repeat``. ``memory_s`` = DRAM bytes / bandwidth; ``compute_s`` = the sum of
every part's operations over its peak (tensor parts at their precision, vector work at the FP32
peak: the pipes do not overlap, an upper bound for kernels that overlap them, as
FlashAttention-3 does). No launch overhead, no L2 reuse across operators, peaks that real kernels
reach only in part: planning estimates, to be replaced by measured times where a GPU exists.

**Bytes** = ``weight_read_bytes + input_bytes + output_bytes`` as the IR counts them: every
tensor crosses DRAM once (the roofline's assumption: tiles are reused on chip, and the
intermediates of fused kernels, the SVDQuant branch's ``m x rank`` or attention's scores, never
leave it), in the IR's packed storage (int4 and nvfp4 codes two per byte plus their scales; they
are dequantized in registers).

**Tensor precision** (:func:`tensor_precision`, from the operand formats; ``ops = 2 x MACs``):

* both integer: ``int4`` when both hold <= 4-bit codes, else ``int8``; a device without int4
  tensor cores (the H100) runs int4 codes as int8 (:meth:`sw.roofline.Device.peak`). Codes
  with group scales (SVDQuant's ``int4_g64``) rescale the int32 partial sum of every group on the
  FP32 pipe: :data:`GROUP_RESCALE_OPS` per (output element, group) of vector work, which the IR
  does not count (int32 -> fp32, the product of the two scales, one FMA).
* both fp8: ``fp8``; without fp8 tensor cores (the A100) upcast to ``fp16``.
* ``nvfp4`` (either operand): ``fp16``. No device here has FP4 tensor cores. An E2M1 code times
  its E4M3 group scale is exact in fp16 (<= 6 significant bits, magnitudes 2^-10 .. 2688), so
  the operands dequantize exactly in registers and the fp32 tensor scale goes to the epilogue.
  Not fp8: that product does not fit E4M3, and keeping the scales outside the MMA needs a K
  step of 16 where the fp8 MMA steps 32 (half its rate: the fp16 rate); the A100 has no fp8.
* otherwise ``fp32`` if an operand is fp32, else ``fp16`` (bf16 has the same peak); a quantized
  weight beside 16-bit activations (AWQ W4A16) is dequantized to fp16 in registers (not costed).

A ``Linear``'s SVDQuant branch (``m rank (k + n)`` MACs) runs at fp16 (its 16-bit weights; the
reference kernel :mod:`sw.svdquant` computes it in fp32 for exactness). ``LinearAttention`` runs
at the FP32 peak: Sana's LiteLA and :mod:`sw.linear_attention` compute in float32 (as
:func:`sw.roofline.linear_attention_costs` does).

**Vector work**: the IR's ``vector_elements`` times FP32-op equivalents per element (FMA = 2),
at the FP32 peak: :data:`ELEMENTWISE_VECTOR_OPS` per element-wise op; ``Norm`` 5 (layer) or 3
(rms) plus 2 / 1 for the affine; ``Attention`` 4 + 1 exp per visible score (scale and subtract
the max, running max, exp, row sum); ``LinearAttention`` 3 (ReLU of q and k, the multiply by the
row's reciprocal denominator). A transcendental (exp, tanh, reciprocal) counts as the FP32 ops its
special-function-unit slot is worth: 16 (16 per SM per clock against 128 FP32 FMAs on Ada and
Hopper), 8 on the A100 (64 FMAs). Embeddings and KV-cache reads and writes move data only.

**Kernels** (``kernel``, the :mod:`sw` Triton kernel that runs the operator, else "none"): W4A4
linears ``sw.svdquant.w4a4_gemm_lora``, NVFP4 ``sw.svdquant.nvfp4_gemm_lora``, their activation
quantizers ``sw.svdquant.quantize_act`` / ``quantize_act_nvfp4``; int8 linears (rank 0) and
matmuls ``sw.int8_gemm.int8_gemm``; causal attention (DuoAttention's retrieval and streaming
heads, head_dim a power of two in [16, 128]) ``sw.duo_attention.decode_step`` (one query) or
``sw.duo_attention.prefill``; ``LinearAttention`` with head_dim <= 64
``sw.linear_attention.linear_attention``.

``Conv2d`` runs as an implicit GEMM at its formats' precision; a depthwise one at the FP32 peak.

Pure Python (no torch), deterministic; unknown device names raise ``ValueError`` listing the
known ones; an operator of a kind the IR does not define raises
:class:`mapping.accel_cost.Unmappable` (as the accelerator's costing does).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from sw.roofline import DEVICES, Device

from .ir import (
    Attention,
    Conv2d,
    Elementwise,
    Embedding,
    Format,
    KVCacheRead,
    KVCacheWrite,
    Linear,
    LinearAttention,
    Matmul,
    ModelGraph,
    Norm,
    Op,
)
from .vector_work import ELEMENTWISE_VECTOR_OPS, GROUP_RESCALE_OPS, vector_work

__all__ = ["ELEMENTWISE_VECTOR_OPS", "GROUP_RESCALE_OPS", "GpuCost", "GpuModelCost",
           "gpu_cost", "gpu_model_cost", "tensor_precision", "transcendental_ops"]


_SFU_WEIGHT = {"A100 SXM4 80GB": 8}
_SFU_DEFAULT = 16
_DUO_HEAD_DIMS = (16, 32, 64, 128)
_LINATT_MAX_HEAD_DIM = 64          # sw.linear_attention.MAX_HEAD_DIM (not imported: torch)


@dataclass(frozen=True)
class GpuCost:
    """One operator on one GPU (module docstring). ``precision``: the peak its tensor work ran
    at ("fp32" for vector-only work, "none" for data movement); ``ops``: tensor operations (2 x
    MACs); ``vector_ops``: FP32-op equivalents of its vector work; ``bytes``: DRAM bytes;
    ``utilization = compute_s / time_s``; ``notes``: the rules that applied."""

    op: str
    target: str
    device: str
    precision: str
    kernel: str
    ops: int
    vector_ops: int
    bytes: int
    time_s: float
    compute_s: float
    memory_s: float
    bound: str
    utilization: float
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-able fields (notes as a list)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["notes"] = list(self.notes)
        return out


@dataclass(frozen=True)
class GpuModelCost:
    """A graph on one GPU, per execution: sums of its operators' costs times ``repeat``.
    ``bound``: whichever of ``bound_time_s`` ("compute", "memory": time of the operators bound
    so) is larger; ``by_kind``: op kind -> ``count`` (executions), ``time_s``, ``compute_s``,
    ``memory_s``, ``ops``, ``vector_ops``, ``bytes`` (kinds in first-seen order); ``items``:
    ``("stage.op", repeat, cost of one execution)`` in graph order."""

    model: str
    target: str
    device: str
    time_s: float
    compute_s: float
    memory_s: float
    ops: int
    vector_ops: int
    bytes: int
    bound: str
    bound_time_s: dict[str, float] = field(hash=False)
    by_kind: dict[str, dict[str, float]] = field(hash=False)
    items: tuple[tuple[str, int, GpuCost], ...] = field(hash=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able fields (fresh dicts; items as ``{"op", "repeat", "cost"}``)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out.update(bound_time_s=dict(self.bound_time_s),
                   by_kind={k: dict(v) for k, v in self.by_kind.items()},
                   items=[{"op": n, "repeat": r, "cost": c.to_dict()} for n, r, c in self.items])
        return out


def _device(device: str | Device) -> tuple[str, Device]:
    """(name to report, Device): a :data:`DEVICES` key or a Device (its key if registered)."""
    if isinstance(device, Device):
        return next((k for k, d in DEVICES.items() if d is device), device.name), device
    if isinstance(device, str) and device in DEVICES:
        return device, DEVICES[device]
    raise ValueError(f"unknown device {device!r}; known: {', '.join(sorted(DEVICES))}")


def transcendental_ops(device: str | Device) -> int:
    """FP32-op equivalents of one transcendental on ``device`` (module docstring)."""
    return _SFU_WEIGHT.get(_device(device)[1].name, _SFU_DEFAULT)


def _class(fmt: Format) -> str:
    if fmt.name == "nvfp4":
        return "nvfp4"
    if fmt.kind != "float":
        return "int4" if fmt.bits <= 4 else "int8"
    return {8: "fp8", 16: "fp16"}.get(fmt.bits, "fp32")


def tensor_precision(a: Format, b: Format) -> tuple[str, tuple[str, ...]]:
    """(precision the operands ``a`` x ``b`` ask for, notes) before any device fallback:
    "int4", "int8", "fp8", "fp16" or "fp32" (module docstring)."""
    ca, cb = _class(a), _class(b)
    ints = {"int4", "int8"}
    if ca in ints and cb in ints:
        return ("int4" if ca == cb == "int4" else "int8"), ()
    if ca == cb == "fp8":
        return "fp8", ()
    if "fp32" in (ca, cb):
        return "fp32", ()
    if "nvfp4" in (ca, cb):
        return "fp16", ("nvfp4 as fp16: code x E4M3 group scale dequantized exactly to fp16 "
                        "in registers (no FP4 tensor cores; fp8 cannot hold the product)",)
    mixed = [f.name for f in (a, b) if _class(f) != "fp16"]
    if mixed:
        return "fp16", (f"{', '.join(mixed)} dequantized to fp16 in registers (not costed)",)
    return "fp16", ()


def _peak(dev: Device, requested: str) -> tuple[float, str, tuple[str, ...]]:
    """(ops/s, precision used, notes) of ``requested`` on ``dev``."""
    if requested == "fp8" and "fp8" not in dev.peaks:
        return dev.peaks["fp16"], "fp16", (f"{dev.name} has no fp8 tensor cores: fp16",)
    peak, used = dev.peak(requested)
    notes = (f"{dev.name} has no {requested} tensor cores: codes run as {used}",) if (
        used != requested) else ()
    return peak, used, notes


def _rescale(outputs: int, inner: int, a: Format, b: Format) -> tuple[int, tuple[str, ...]]:
    """Vector ops of the per-group partial-sum rescale of an integer GEMM with group scales."""
    groups = [f.group for f in (a, b) if f.group and f.kind != "float"]
    if not groups or _class(a) not in ("int4", "int8") or _class(b) not in ("int4", "int8"):
        return 0, ()
    per = -(-inner // min(groups))
    return outputs * per * GROUP_RESCALE_OPS, (
        f"partial sums rescaled per group of {min(groups)}: {GROUP_RESCALE_OPS} FP32 ops per "
        f"output element and group",)


def _int8_plain(*fmts: Format) -> bool:
    return all(f.kind != "float" and f.bits == 8 and not f.group for f in fmts)


def _tensor(op: Op) -> tuple[list[tuple[int, str]], int, tuple[str, ...], str]:
    """(tensor parts as (ops, requested precision), vector ops before transcendentals, notes,
    kernel) of a contraction."""
    if isinstance(op, Linear):
        req, notes = tensor_precision(op.act_fmt, op.weight_fmt)
        parts = [(2 * op.m * op.k * op.n, req)]
        if op.rank:
            parts.append((2 * op.m * op.rank * (op.k + op.n), "fp16"))
            notes += (f"SVDQuant branch rank {op.rank} at fp16",)
        vec, more = _rescale(op.m * op.n, op.k, op.act_fmt, op.weight_fmt)
        names = {op.act_fmt.name, op.weight_fmt.name}
        kernel = "none"
        if names <= {"int4_g64", "uint4_g64"} and op.weight_fmt.name == "int4_g64":
            kernel = "sw.svdquant.w4a4_gemm_lora"
        elif names == {"nvfp4"}:
            kernel = "sw.svdquant.nvfp4_gemm_lora"
        elif _int8_plain(op.act_fmt, op.weight_fmt) and not op.rank:
            kernel = "sw.int8_gemm.int8_gemm"
        return parts, vec, notes + more, kernel
    if isinstance(op, Matmul):
        req, notes = tensor_precision(op.a_fmt, op.b_fmt)
        vec, more = _rescale(op.batch * op.m * op.n, op.k, op.a_fmt, op.b_fmt)
        kernel = "sw.int8_gemm.int8_gemm" if _int8_plain(op.a_fmt, op.b_fmt) else "none"
        return [(2 * op.macs, req)], vec, notes + more, kernel
    if isinstance(op, Conv2d):
        req, notes = tensor_precision(op.act_fmt, op.weight_fmt)
        outputs = op.batch * op.c_out * op.oh * op.ow
        vec, more = _rescale(outputs, op.c_in // op.groups * op.kernel ** 2, op.act_fmt,
                             op.weight_fmt)
        if op.depthwise:
            req, notes = "fp32", notes + ("depthwise: CUDA cores at the FP32 peak (one channel "
                                          "per contraction: no tensor-core tile)",)
        return [(2 * op.macs, req)], vec, notes + more, "none"
    if isinstance(op, Attention):
        req, notes = tensor_precision(op.fmt, op.kv_fmt)
        kernel = "none"
        if op.causal and op.head_dim in _DUO_HEAD_DIMS:
            kernel = "sw.duo_attention." + ("decode_step" if op.q_tokens == 1 else "prefill")
        return [(2 * op.macs, req)], 0, notes, kernel
    if isinstance(op, LinearAttention):
        kernel = ("sw.linear_attention.linear_attention"
                  if op.head_dim <= _LINATT_MAX_HEAD_DIM else "none")
        return [(2 * op.macs, "fp32")], 0, ("LiteLA in fp32 (Sana, sw.linear_attention)",), kernel
    return [], 0, (), "none"


_KINDS = (Linear, Matmul, Conv2d, Elementwise, Norm, Attention, LinearAttention, KVCacheWrite,
          KVCacheRead, Embedding)


def _cost(op: Op, name: str, dev: Device) -> GpuCost:
    if not isinstance(op, _KINDS):
        from .accel_cost import Unmappable  # lazy: accel_cost imports the hw generator
        raise Unmappable(op, "no GPU costing for this kind", name)
    parts, vec, notes, kernel = _tensor(op)
    compute, precision = 0.0, ""
    for ops, req in parts:
        peak, used, more = _peak(dev, req)
        compute += ops / peak
        precision = precision or used
        notes += more
    base, sfu = vector_work(op)
    vec += base + sfu * _SFU_WEIGHT.get(dev.name, _SFU_DEFAULT)
    if vec:
        compute += vec / dev.peaks["fp32"]
        precision = precision or "fp32"
    if kernel == "none" and isinstance(op, Elementwise) and op.op == "quantize":
        kernel = {"int4_g64": "sw.svdquant.quantize_act", "uint4_g64": "sw.svdquant.quantize_act",
                  "nvfp4": "sw.svdquant.quantize_act_nvfp4"}.get(op.out_fmt.name, "none")
    nbytes = op.weight_read_bytes + op.input_bytes + op.output_bytes
    memory = nbytes / dev.bandwidth
    time = max(compute, memory)
    return GpuCost(op.name, "gpu", name, precision or "none", kernel,
                   sum(o for o, _ in parts), vec, nbytes, time, compute, memory,
                   "compute" if compute >= memory else "memory",
                   compute / time if time else 0.0, notes)


def gpu_cost(op: Op, device: str | Device = "RTX4090-laptop") -> GpuCost:
    """The roofline cost of one execution of ``op`` on ``device`` (a :data:`DEVICES` key, or a
    :class:`~sw.roofline.Device`); ``ValueError`` for an unknown device, listing the known ones.
    Deterministic; every IR operator kind is costed."""
    name, dev = _device(device)
    return _cost(op, name, dev)


def gpu_model_cost(graph: ModelGraph, device: str | Device = "RTX4090-laptop") -> GpuModelCost:
    """``graph`` on ``device``, one execution: every operator's :func:`gpu_cost` times its
    stage's ``repeat``, summed (totals, per kind, and per operator)."""
    name, dev = _device(device)
    items: list[tuple[str, int, GpuCost]] = []
    by_kind: dict[str, dict[str, float]] = {}
    bound_time = {"compute": 0.0, "memory": 0.0}
    memo: dict[Op, GpuCost] = {}
    for stage, op in graph.walk():
        c = memo.get(op)
        if c is None:
            c = memo[op] = _cost(op, name, dev)
        r = stage.repeat
        items.append((f"{stage.name}.{op.name}", r, c))
        k = by_kind.setdefault(op.kind, {"count": 0, "time_s": 0.0, "compute_s": 0.0,
                                         "memory_s": 0.0, "ops": 0, "vector_ops": 0,
                                         "bytes": 0})
        for key, value in (("count", 1), ("time_s", c.time_s), ("compute_s", c.compute_s),
                           ("memory_s", c.memory_s), ("ops", c.ops),
                           ("vector_ops", c.vector_ops), ("bytes", c.bytes)):
            k[key] += value * r
        bound_time[c.bound] += c.time_s * r
    tot = {key: sum(v[key] for v in by_kind.values())
           for key in ("time_s", "compute_s", "memory_s", "ops", "vector_ops", "bytes")}
    return GpuModelCost(graph.name, "gpu", name, tot["time_s"], tot["compute_s"],
                        tot["memory_s"], tot["ops"], tot["vector_ops"], tot["bytes"],
                        "compute" if bound_time["compute"] >= bound_time["memory"] else "memory",
                        bound_time, by_kind, tuple(items))
