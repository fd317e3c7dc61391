"""A tiny model end to end: its torch twin (:data:`mapping.torch_models.TORCH_TWINS`, seeded
weights, float32) run four ways and compared (:func:`run_e2e`).

* **float**: the twin as written (the reference).
* **accelerator**: every ``nn.Linear`` as a W8A8 GEMM on the generated accelerator: the
  activations' rows and the weights' output channels quantized symmetric to int8
  (:func:`golden.svdquant_fixed.quantize_symmetric`), ``C = A W^T`` (int32) by the kernel
  library's program under the mapper's choice (:func:`mapping.mapper.map_op`: dataflow and
  tiles) on the reference machine, and with ``engine="fast"`` on the accelerator's RTL
  (Verilator), whose DRAM must equal the reference machine's; ``y = C s_a s_w^T + b`` in
  float32; a pointwise (1x1) ``nn.Conv2d`` the same GEMM over its pixels
  (:mod:`flows.e2e_conv`: the mapper's GEMM of the ``Conv2d``). Sana's ReLU linear attention
  runs on the linear-attention kernel where the
  architecture has its units (:mod:`flows.e2e_units`); DuoAttention's decode leaves on the
  fused attention kernels (retrieval heads: the long-context decode tile; streaming heads:
  the ring-cache step after its warming setup) where it has requant, softmax, normalizer
  and kv_cache (:mod:`flows.e2e_duo`: a record per KV head, shape ``(G, keys, D)``, its
  ``mapper_cycles`` the fused kernel's cost, which the mapper may not prefer); SVDQuant W4A4
  leaves on the SVDQuant kernel where it has requant and dequant (:mod:`flows.e2e_svdquant`:
  int4 activation codes, the leaf's int4 weight codes, the int8 branch, one float32 output
  per call, shape ``(M, K, N)``); unmasked softmax attention (FLUX.1's joint attention,
  Sana's cross-attention, VILA-U's decode: :class:`~mapping.torch_attention.SoftmaxAttention`)
  on the long-context attention kernel where it has those units (:mod:`flows.e2e_softmax`);
  AWQ W4A16 linears of one weight group (FLUX.1's modulation) as W4A8 GEMMs of their int4
  codes, the zero points and scales on the host (:mod:`flows.e2e_w4a16`). Every other
  operator (norms, element-wise ops, DuoAttention in prefill, SVDQuant leaves without the
  units, attention without them) runs in
  torch float32 (listed in the report's ``torch_ops``), costed on the accelerator's host as
  the mapper costs it (:mod:`flows.e2e_host`: ``host_cycles``, ``total_cycles``).
* **golden**: the same chain with :func:`golden.int_gemm.int_gemm` for ``C`` (and golden's
  fixed-point DuoAttention head and SVDQuant layer,
  :func:`golden.svdquant_fixed.svdquant_fixed_int`, for those leaves): the accelerator run
  must equal it bit for bit, every GEMM, every head, every layer and the model's outputs.
* **gpu** (``gpu=True``, the default): the same chain with its leaves on the :mod:`sw`
  Triton kernels (:mod:`flows.e2e_gpu`, where the contract and bounds are; Triton's
  interpreter without a GPU): every ``nn.Linear`` the W8A8 GEMM above with ``C`` by
  ``sw.int8_gemm`` (equal to golden's, so its output is the accelerator's on that input, bit
  for bit), SVDQuant leaves on the W4A4 kernel with its fused low-rank branch, linear
  attention and DuoAttention (decode and prefill) on their kernels, the rest in torch float32;
  a :class:`~flows.e2e_gpu.GpuRecord` per call (error, bound, Triton launches). Reported: the
  output's error against the float run (``max_err_gpu``, ``rel_err_gpu``) and its largest
  difference from the accelerator run's output (``gpu_vs_accel``: 0 where the two chains
  differ in linears only, as on tiny-vila-u).

Per linear call (:class:`OpRecord`): the cycle model's cycles on its program, the RTL's
(fast engine), the mapper's cost, DRAM bytes, utilization, whether ``C`` matched golden, and
its error against the float linear on the same input with the W8A8 bound
``sum_k |a| s_w / 2 + s_a / 2 |w| + s_a s_w / 4`` plus float32 rounding of the dequantization
(``4 u |y| + u |b|``). The model's output error against the float run is reported, not bounded
(the chain's errors compound). :attr:`E2ERun.passed` needs every accelerator call bit-exact,
in its cycles and within its bound, and every GPU call launched and within its bound.

Layer: flows (it runs the RTL engines).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from golden.int_gemm import int_gemm
from hw.front.accel_params import accel_params
from hw.front.accel_timing import accel_timing
from hw.front.arch import ArchSpec
from hw.front.kernel_runs import gemm_operands, run_gemm
from mapping.ir import Linear
from mapping.lower import gemm_schedule
from mapping.mapper import map_op

from .e2e_blocks import block_errors
from .e2e_forward import ForwardProgram, forward_program
from .e2e_host import HostCosted
from .e2e_w8a8 import w8a8_error, w8a8_operands, w8a8_output

if TYPE_CHECKING:
    from .e2e_gpu import GpuRecord, GpuRunner
    from .e2e_host import HostRecord

__all__ = ["E2E_ENGINES", "E2ERun", "OpRecord", "run_e2e"]

E2E_ENGINES = ("fast", "ref")


@dataclass(frozen=True)
class OpRecord:
    """One accelerator call (``name``: the module path, ``#n`` the call, ``[b,h]`` the head):
    ``shape`` (m, k, n) of a linear, (tokens, d, dv) of a linear-attention head;
    ``rtl_cycles`` None on the reference engine; ``err`` and ``err_bound`` the error against
    float and its bound at the element nearest (or furthest past) its bound
    (:func:`flows.e2e_error.worst`: within the bound there iff everywhere)."""

    name: str
    target: str
    shape: tuple[int, int, int]
    dataflow: str
    model_cycles: int
    rtl_cycles: int | None
    mapper_cycles: int
    dram_bytes: int
    utilization: float
    bit_exact: bool
    err: float
    err_bound: float

    @property
    def cycles_match(self) -> bool:
        """Model = mapper (= RTL when measured)."""
        return self.model_cycles == self.mapper_cycles and self.rtl_cycles in (
            None, self.model_cycles)


@dataclass(frozen=True)
class E2ERun(HostCosted):
    """A model's runs (module docstring): the accelerator calls' records, the output error of
    the accelerator run against float (max abs, and relative to the float output's max abs),
    whether it equals the golden run bit for bit; with the GPU run, its kernel calls' records
    (:class:`flows.e2e_gpu.GpuRecord`), its output error against float (max abs, relative),
    its largest difference from the accelerator run's output, the leaf kinds it left in
    torch and its wall time (``gpu_seconds``, not in :meth:`report`: it varies). The GPU
    fields are None (``gpu_ops`` empty) without the GPU run. ``host_ops``: the operators left
    in torch, costed on the host (:class:`flows.e2e_host.HostRecord`)."""

    model: str
    arch: str
    engine: str
    ops: tuple[OpRecord, ...]
    max_err_accel: float
    rel_err_accel: float
    bit_exact: bool
    torch_ops: tuple[str, ...]
    gpu_ops: tuple[GpuRecord, ...] = ()
    max_err_gpu: float | None = None
    rel_err_gpu: float | None = None
    gpu_vs_accel: float | None = None
    gpu_torch_ops: tuple[str, ...] = ()
    gpu_seconds: float | None = field(default=None, compare=False)
    host_ops: tuple[HostRecord, ...] = ()
    forward: ForwardProgram | None = None
    #: per block call (:mod:`flows.e2e_blocks`): (``path#n``, max abs error, relative)
    blocks: tuple[tuple[str, float, float], ...] = ()

    @property
    def cycles_match(self) -> bool:
        return all(op.cycles_match for op in self.ops)

    @property
    def within_bounds(self) -> bool:
        return all(op.err <= op.err_bound for op in self.ops)

    @property
    def gpu_within_bounds(self) -> bool:
        """Every GPU call launched its kernels, within its bound, bit-exact where claimed."""
        return all(op.passed for op in self.gpu_ops)

    @property
    def passed(self) -> bool:
        return (self.bit_exact and self.cycles_match and self.within_bounds
                and self.gpu_within_bounds and (self.forward is None or self.forward.passed))

    def report(self) -> dict[str, Any]:
        """The one JSON line: model, bit_exact, max_err_accel, cycles_match, the cycles
        (accelerator, host, total; the host's uncosted ops by kind), the GPU run's
        max_err_gpu, rel_err_gpu, gpu_vs_accel (null without it), pass and more."""
        from .e2e_host import uncosted_kinds

        return {"model": self.model, "arch": self.arch, "engine": self.engine,
                "bit_exact": self.bit_exact, "max_err_accel": self.max_err_accel,
                "rel_err_accel": self.rel_err_accel, "cycles_match": self.cycles_match,
                "within_bounds": self.within_bounds, "accel_ops": len(self.ops),
                "accel_cycles": self.accel_cycles, "host_ops": len(self.host_ops),
                "host_cycles": self.host_cycles, "host_uncosted": uncosted_kinds(self.host_ops),
                "total_cycles": self.total_cycles,
                "torch_ops": list(self.torch_ops), "max_err_gpu": self.max_err_gpu,
                "rel_err_gpu": self.rel_err_gpu, "gpu_vs_accel": self.gpu_vs_accel,
                "gpu_within_bounds": self.gpu_within_bounds, "gpu_ops": len(self.gpu_ops),
                "gpu_torch_ops": list(self.gpu_torch_ops), **_forward_fields(self.forward),
                "blocks": len(self.blocks),
                "max_block_rel_err": max((b[2] for b in self.blocks), default=None),
                "pass": self.passed}


def _forward_fields(forward: ForwardProgram | None) -> dict[str, Any]:
    """The JSON line's fields of the forward's one program (:mod:`flows.e2e_forward`)."""
    if forward is None:
        return {"one_program_cycles": None, "one_program_rtl_cycles": None,
                "one_program_match": None}
    return {"one_program_cycles": forward.model_cycles,
            "one_program_rtl_cycles": forward.rtl_cycles,
            "one_program_match": forward.dram_match}


class _Gemms:
    """The int32 products of one run (and the workload units' kernels, :mod:`flows.e2e_units`):
    on the accelerator (records kept) or golden's."""

    def __init__(self, arch: ArchSpec, engine: str | None) -> None:
        self.arch, self.engine, self.records = arch, engine, []
        #: per accelerator call: (name, program, DRAM before, after, result ranges or None)
        self.calls: list[tuple] = []
        self._count: dict[str, int] = {}

    def call(self, path: str) -> str:
        """``path#n``, ``n`` the call of module ``path`` (from 1)."""
        self._count[path] = self._count.get(path, 0) + 1
        return f"{path}#{self._count[path]}"

    def __call__(self, name: str, a: np.ndarray, b: np.ndarray, op: Linear | None = None
                 ) -> tuple[np.ndarray, dict]:
        """``C = a b`` (int32): golden's (no record fields) or the accelerator's, on the array
        step of the mapper's choice for ``op`` (default: the int8 ``Linear`` of the shape);
        ``ValueError`` unless that choice has exactly one array step, a single GEMM."""
        t = self.arch.types
        gold = int_gemm(a, b, t[0], t[1], t[2].bits)
        if self.engine is None:
            return gold, {}
        (m, k), n = a.shape, b.shape[1]
        op = op or Linear(name.replace(".", "_"), m, k, n, "int8", "int8")
        steps = [s for s in map_op(self.arch, op).steps if s.target == "accel"]
        if len(steps) != 1 or steps[0].schedule.get("lowering") != "gemm" \
                or steps[0].schedule.get("repeat", 1) != 1:
            raise ValueError(f"{name}: the mapper runs {op} on the array as "
                             f"{[s.op for s in steps]}, not one GEMM")
        step = steps[0]
        run = run_gemm(self.arch, step.dataflow, gemm_operands(self.arch, m, n, k), a, b,
                       gemm_schedule(step.schedule))
        return np.asarray(run.output), self.measured(run, gold, name, (m, k, n), step)

    def keep(self, name: str, program, dram_in: bytes, dram_out: bytes,
             results: list[tuple[int, int]] | None = None) -> None:
        """Keep call ``name``'s program, its DRAM before and after and the byte ranges
        ``(start, end)`` of its results (None: all of it) for :mod:`flows.e2e_forward`."""
        self.calls.append((name, list(program), bytes(dram_in), bytes(dram_out), results))

    def measured(self, run, gold: np.ndarray, name: str, shape: tuple[int, int, int],
                 step) -> dict:
        """A record's fields for kernel run ``run`` of mapped step ``step``: the cycle model,
        the RTL's cycles and DRAM (fast engine), the output against golden's ``gold``."""
        model = accel_timing(run.program, accel_params(self.arch)).cycles
        exact = bool(np.array_equal(run.output, gold))
        self.keep(name, run.program, run.dram_in, run.machine.dram.tobytes())
        rtl = None
        if self.engine == "fast":
            from .accel_engines import run_program

            r = run_program(self.arch, run.program, run.dram_in, engine="fast",
                            expected_cycles=model)
            rtl, exact = r.cycles, exact and r.dram == run.machine.dram.tobytes()
        return {"name": name, "target": "accel", "shape": shape, "dataflow": step.dataflow,
                "model_cycles": model, "rtl_cycles": rtl, "mapper_cycles": step.cycles,
                "dram_bytes": step.dram_bytes, "utilization": step.utilization,
                "bit_exact": exact}


def _w8a8(torch, linear, x, gemms: _Gemms, name: str):
    """``linear(x)`` through a W8A8 GEMM (module docstring); records the call on ``gemms``."""
    a, w, bias, qa, sa, qw, sw = w8a8_operands(torch, linear, x)
    c, rec = gemms(name, qa.astype(np.int64), qw.T.astype(np.int64))
    y = w8a8_output(c, sa, sw, bias)
    if rec:
        err, bound = w8a8_error(a, w, bias, sa, sw, y)
        gemms.records.append(OpRecord(**rec, err=err, err_bound=bound))
    out = torch.from_numpy(np.ascontiguousarray(y)).reshape(*x.shape[:-1], linear.out_features)
    return out.to(x.dtype)


def _run(model, inputs, gemms: _Gemms | GpuRunner | None,
         blocks: list | None = None):
    """One forward of a copy of ``model`` (its caches untouched), linears through ``gemms``
    (the accelerator's or golden's products, or the GPU run's kernels); each block call's
    output appended to ``blocks`` (:func:`flows.e2e_blocks.recording`) when given."""
    import torch

    from mapping.torch_attention import DuoAttention, ReLULinearAttention
    from mapping.torch_blocks import SVDQuantLinear

    from .e2e_conv import is_pointwise, pointwise_conv
    from .e2e_duo import duo_attention, on_accelerator
    from .e2e_softmax import softmax_attention, softmax_on_accelerator
    from .e2e_svdquant import svdquant_linear, svdquant_on_accelerator
    from .e2e_units import has_linear_attention, lite_la
    from .e2e_w4a16 import w4a16_linear, w4a16_on_accelerator

    model = copy.deepcopy(model)
    if isinstance(gemms, _Gemms):
        call = gemms.call
        for path, mod in model.named_modules():
            if isinstance(mod, torch.nn.Linear):
                mod.forward = lambda x, mod=mod, path=path: _w8a8(torch, mod, x, gemms,
                                                                  call(path))
            elif is_pointwise(mod):
                mod.forward = lambda x, mod=mod, path=path: pointwise_conv(torch, mod, x, gemms,
                                                                           call(path))
            elif isinstance(mod, ReLULinearAttention) and has_linear_attention(gemms.arch):
                mod.forward = lambda q, k, v, path=path: lite_la(torch, q, k, v, gemms,
                                                                 call(path))
            elif isinstance(mod, DuoAttention) and on_accelerator(mod, gemms.arch):
                mod.forward = lambda q, k, v, pos, mod=mod, path=path: duo_attention(
                    torch, mod, q, k, v, pos, gemms, call(path))
            elif w4a16_on_accelerator(mod, gemms.arch):
                mod.forward = lambda x, mod=mod, path=path: w4a16_linear(torch, mod, x, gemms,
                                                                        call(path))
            elif softmax_on_accelerator(mod, gemms.arch):
                mod.forward = lambda q, k, v, path=path: softmax_attention(torch, q, k, v, gemms,
                                                                           call(path))
            elif isinstance(mod, SVDQuantLinear) and svdquant_on_accelerator(mod, gemms.arch):
                mod.forward = lambda x, mod=mod, path=path: svdquant_linear(torch, mod, x, gemms,
                                                                           call(path))
    elif gemms is not None:
        gemms.install(model)
    from .e2e_blocks import recording

    with torch.no_grad(), recording(model, [] if blocks is None else blocks):
        out = model(*inputs)
    outs = out if isinstance(out, tuple | list) else (out,)
    return [o.detach().to(torch.float32).numpy() for o in outs if torch.is_tensor(o)]


def _torch_kinds(model, arch: ArchSpec) -> tuple[str, ...]:
    """The kinds of ``model``'s leaves that stay in torch on ``arch``."""
    from .e2e_host import runs_on_accelerator

    kinds = {type(m).__name__ for m in model.modules()
             if not runs_on_accelerator(m, arch) and not list(m.children())}
    return tuple(sorted(kinds))


def _gpu_run(model, inputs, ref: list[np.ndarray], accel: list[np.ndarray]
             ) -> dict[str, Any]:
    """The GPU run (:mod:`flows.e2e_gpu`) of ``model`` against the float outputs ``ref`` and
    the accelerator's ``accel``: :class:`E2ERun`'s GPU fields."""
    from .e2e_gpu import GpuRunner

    t0 = time.perf_counter()
    runner = GpuRunner()
    got = _run(model, inputs, runner)
    err = max(float(np.abs(g - r).max(initial=0.0)) for g, r in zip(got, ref, strict=True))
    scale = max(float(np.abs(r).max(initial=0.0)) for r in ref) or 1.0
    vs = max(float(np.abs(g - a).max(initial=0.0)) for g, a in zip(got, accel, strict=True))
    return {"gpu_ops": tuple(runner.records), "max_err_gpu": err, "rel_err_gpu": err / scale,
            "gpu_vs_accel": vs, "gpu_torch_ops": runner.torch_kinds(model),
            "gpu_seconds": time.perf_counter() - t0}


def run_e2e(name: str, arch: ArchSpec, *, engine: str = "fast", seed: int = 0,
            gpu: bool = True, host: bool = True) -> E2ERun:
    """Tiny model ``name`` (a key of :data:`~mapping.torch_models.TORCH_TWINS`) on ``arch``:
    float, accelerator (``engine``: "fast" RTL + reference machine, or "ref" alone), golden
    and, with ``gpu`` (default), GPU-kernel runs compared; with ``host`` (default), the ops
    left in torch costed on the host (module docstring). ``ValueError`` for an unknown model
    or engine."""
    import torch

    from mapping.torch_models import E2E_TWIN_OPTIONS, TORCH_TWINS

    if name not in TORCH_TWINS:
        raise ValueError(f"no torch twin named {name!r} (known: {', '.join(TORCH_TWINS)})")
    if engine not in E2E_ENGINES:
        raise ValueError(f"engine must be one of {', '.join(E2E_ENGINES)}, got {engine!r}")
    model, inputs = TORCH_TWINS[name](seed=seed, **E2E_TWIN_OPTIONS.get(name, {}))
    model = model.float().eval()
    for mod in model.modules():         # leaves that cast their outputs (Timesteps)
        if isinstance(getattr(mod, "dtype", None), torch.dtype):
            mod.dtype = torch.float32
    inputs = tuple(x.float() if torch.is_tensor(x) and x.is_floating_point() else x
                   for x in inputs)
    ref_blocks, got_blocks = [], []
    ref = _run(model, inputs, None, ref_blocks)
    accel = _Gemms(arch, engine)
    got = _run(model, inputs, accel, got_blocks)
    gold = _run(model, inputs, _Gemms(arch, None))
    exact = all(np.array_equal(g, h) for g, h in zip(got, gold, strict=True)) and all(
        op.bit_exact for op in accel.records)
    err = max(float(np.abs(g - r).max(initial=0.0)) for g, r in zip(got, ref, strict=True))
    scale = max(float(np.abs(r).max(initial=0.0)) for r in ref) or 1.0
    extra = _gpu_run(model, inputs, ref, got) if gpu else {}
    extra["forward"] = forward_program(arch, accel.calls, engine)
    extra["blocks"] = block_errors(got_blocks, ref_blocks)
    if host:
        from .e2e_host import host_records

        extra["host_ops"] = host_records(model, inputs, arch, accel.records)
    return E2ERun(name, arch.name, engine, tuple(accel.records), err, err / scale, exact,
                  _torch_kinds(model, arch), **extra)
