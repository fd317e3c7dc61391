"""What an IR operator costs on a generated accelerator: the kernel library's best program
over the architecture's dataflows, its cycles, counts and energy (:func:`cost_op`).

**Lowering** (else :class:`Unmappable`, naming the op and the reason):

* ``Linear`` ``Y = X W^T``: the GEMM ``C (m x n) = A (m x k) B (k x n)`` with A = X and B =
  W^T, the weights laid out K x N once, offline (no transposed moves). With int4 group codes
  of the dequantizer's group (activations signed or unsigned after the GELU shift) on an
  architecture with the dequant unit (and requant for a branch): the SVDQuant kernel
  (:mod:`mapping.accel_svdquant`: group dots, dequantization, the rank-``r`` branch on chip;
  rank 0 the plain W4A4 layer; float32 out), on its weight-stationary dataflow; a layer of
  more than three blocks of rows or tiles of outputs is costed from shorter programs of 2 and
  3 of them, equal to the whole program's cost. SVDQuant ``rank > 0`` anywhere else:
  unmappable.
* ``Matmul``: one ``m x n x k`` GEMM; ``batch > 1`` runs the batch's GEMMs back to back, costed
  as one times ``batch`` (no overlap between them: an upper bound by at most the pipeline's
  fill and drain per GEMM).
* ``Conv2d``, stride 1 only (stride > 1: unmappable, the conv kernel is stride-1): a 1x1 conv
  without padding is one GEMM ``c_out x (batch h w) x c_in`` (activations channel-major
  across the batch); any other is the conv kernel (:func:`~hw.front.kernels.conv2d_program`,
  sums over taps of GEMMs on strided image views) on the image stored padded in DRAM (the
  padding's copy is the producer's), once per batch element. ``groups > 1`` (depthwise
  included: ``groups == c_in == c_out``) runs one convolution of ``c_in / groups`` channels
  into ``c_out / groups`` per group, back to back: ``groups`` times one group's cost (for a
  depthwise conv a 1-channel program: poor use of the array, which the cost shows).
* ``Attention`` and ``LinearAttention`` of int8 codes (else unmappable: a precision policy
  converts upstream) on an architecture with the fused attention units (requant, softmax,
  normalizer, kv_cache; requant, normalizer and operand ReLU for linear attention; else
  unmappable, naming the missing units: a mapper decomposes into GEMMs and host work):
  the fused kernels, :mod:`mapping.accel_attention`. One program per KV head and batch
  element, its GQA group of query heads together: a streaming head (``window``) as
  DuoAttention steps over its ring cache resident in the scratchpad, a causal one as query
  tiles over key blocks streamed from DRAM (a decode: one tile of one token), a non-causal
  one as such tiles over all keys; linear attention one program per head. Below
  ``exact_below`` MACs a program the whole program is timed (``exact``); above, it is
  composed from short programs (key blocks, tiles, steps, their junctions), equal to the
  whole program's cycles and counts. They run on the first dataflow keeping i in time only.

A lowering is a program repeated ``repeat`` times; cycles, MACs, bytes and accesses are one
program's times ``repeat`` (``schedule["repeat"]``).

**Formats**: the array multiplies the architecture's A/B type (int8 on the shipped ones).
Integer activations and weights whose codes fit it run as such codes, one element per A-type
element (int4 codes one per byte, as the SVDQuant kernel holds them); the group scales of a
grouped int4 format are not applied by the plain GEMM (their dequantization is the SVDQuant
kernel's, a note says so). Float formats (bf16, fp16, fp32, fp8, nvfp4) are unmappable on an
integer array. The output leaves in the accumulator type (int32), whatever ``out_fmt`` says.
So ``dram_bytes`` is what the program moves (A/B elements and C results at the architecture's
widths), not the IR's packed storage: the IR's bytes are the mapper's concern.

**Search** (GEMMs, convolutions): for every dataflow of the architecture (or those given),
the kernel library's schedule (:func:`~hw.front.kernel_choice.choose_schedule`); the fewest
cycles win, ties by fewer DRAM bytes, then fewer instructions, then the architecture's
dataflow order. A program
of fewer than ``exact_below`` MACs is built and timed by the cycle model
(:func:`~hw.front.accel_timing.accel_timing`, equal to the RTL's cycles), counted by
:func:`~hw.front.program_cost.program_cost` (``exact = True``); a larger one takes
:func:`~hw.front.kernel_choice.estimate`'s cycles (a closed-form account of the same program's
compute, instruction issue, prefetch reach and DMA work per step, edge tiles at their extents
as the accelerator runs them, not padded) and the closed-form counts
(:func:`~hw.front.kernels.gemm_cost`, equal to ``program_cost`` of the program: only the
cycles are estimated; ``exact = False``). Measured against the cycle model on 150 random
mid-size GEMMs (2^21 .. 2^25 MACs) per architecture (``tests/mapping/test_accel_cost.py``
keeps the worst): median error 1%, 90th percentile 2.6% (lego_fused) and 5% (gemmini_like),
worst -14.6% (lego_fused, 512x256x64) and +25% (gemmini_like, M = 24, K = 200: a schedule
the library chose by padded tiles); convolutions within 3.1%; a single dataflow's estimate is
off by up to 32% on some shapes. Large layers (2^24 .. 2^31 MACs, 5 shapes) are within 0.8%. On
tiny problems the estimate is off by up to ~20%, hence the default threshold, which keeps
every op of the zoo's ``tiny-`` models exact.

**Energy** (:func:`arch_energies`, :mod:`mapping.energy`, 45 nm): padded MACs x the MAC energy
(A-type multiply + C-type add), scratchpad and accumulator row reads + writes x the access
energy of a row in one bank (row bits, bank capacity), DRAM bytes x the default pJ per byte.

Results are memoized per (architecture, operator fields but its name, options); everything is
deterministic.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, fields, replace
from functools import lru_cache
from typing import Any

from hw.front.arch import ArchSpec
from hw.front.kernel_choice import choose_schedule, estimate
from hw.front.kernel_runs import conv_operands, gemm_operands
from hw.front.kernel_schedule import GemmProblem, GemmSchedule, plan_schedule
from hw.front.kernel_svdquant import svdquant_block_rows, svdquant_operands
from hw.front.kernels import (
    conv2d_cost,
    conv2d_instructions,
    conv2d_program,
    gemm_cost,
    gemm_instructions,
    gemm_program,
)
from hw.front.program_cost import ProgramCost
from hw.front.spec_model import SpecError

from .accel_attention import attention_cost
from .accel_attention import clear_cache as clear_attention_cache
from .accel_svdquant import svdquant_cost
from .energy import EnergyTable, energy_table
from .ir import Attention, Conv2d, Format, Linear, LinearAttention, Matmul, Op
from .op_cost import EXACT_BELOW, OpCost, Unmappable, arch_energies, priced, timed

__all__ = ["EXACT_BELOW", "OpCost", "Unmappable", "arch_energies", "clear_cache", "cost_op"]

_CACHE_MAX = 1 << 16
_cache: dict[tuple, tuple[ArchSpec, OpCost]] = {}


@dataclass(frozen=True)
class _Lowering:
    kind: str                       #: "gemm" (m, n, k) or "conv2d" (c, h, w, kernels, r, s)
    shape: tuple[int, ...]
    repeat: int
    notes: tuple[str, ...]

    @property
    def macs(self) -> int:
        """MACs of one program."""
        if self.kind == "gemm":
            m, n, k = self.shape
            return m * n * k
        c, h, w, kk, r, s = self.shape
        return kk * c * r * s * (h - r + 1) * (w - s + 1)


def _codes(op: Op, arch: ArchSpec, fmt_field: str, operand: int) -> tuple[str, ...]:
    """Notes for operand ``fmt_field`` of ``op`` as array codes; Unmappable when it is a float
    format or its codes do not fit the array's type."""
    fmt: Format = getattr(op, fmt_field)
    t = arch.types[operand]
    if fmt.kind == "float":
        raise Unmappable(op, f"{fmt_field} is {fmt.name}, a float format; the array multiplies "
                             f"{t.name} codes (send it to a float target)", arch.name)
    lo, hi = (-(1 << (fmt.bits - 1)), (1 << (fmt.bits - 1)) - 1) if fmt.kind == "int" else (
        0, (1 << fmt.bits) - 1)
    if lo < t.min or hi > t.max:
        raise Unmappable(op, f"{fmt_field} {fmt.name} codes do not fit the array's {t.name}",
                         arch.name)
    notes = []
    if fmt.bits < t.bits:
        notes.append(f"{fmt_field} {fmt.name}: codes held one per {t.name} element")
    if fmt.group:
        notes.append(f"{fmt_field} {fmt.name}: group scales not applied (the SVDQuant "
                     f"kernel's dequantization is not costed)")
    return tuple(notes)


def _grouped_int4(op: Linear, arch: ArchSpec) -> bool:
    """Whether ``op`` runs on the SVDQuant kernel: int4 group codes (activations signed or
    unsigned) of the dequantizer's group, int8 arrays, the requant unit for a branch."""
    dq, fmts = arch.units.dequant, (op.act_fmt, op.weight_fmt)
    return (dq is not None and all(f.kind in ("int", "uint") and f.bits == 4 and
                                   f.group == dq.group for f in fmts)
            and op.weight_fmt.kind == "int" and arch.types[0].bits == 8
            and arch.types[2].bits == 32 and (not op.rank or arch.units.requant is not None))


def _lower(arch: ArchSpec, op: Op) -> _Lowering:
    """The program ``op`` runs as (module docstring), or Unmappable."""
    if isinstance(op, Linear):
        if _grouped_int4(op, arch):
            return _Lowering("svdquant", (op.m, op.k, op.n, op.rank), 1, (
                "the SVDQuant kernel: group dots, the group dequantizer, the low-rank branch "
                "on chip (hw.front.kernel_svdquant)",))
        if op.rank:
            units = arch.units
            raise Unmappable(op, f"SVDQuant rank {op.rank} > 0 takes int4 group codes of the "
                                 f"dequantizer's group on an architecture with the requant and "
                                 f"dequant units (dequant group: "
                                 f"{units.dequant.group if units.dequant else 'none'}; "
                                 f"formats {op.act_fmt.name}, {op.weight_fmt.name})", arch.name)
        notes = _codes(op, arch, "act_fmt", 0) + _codes(op, arch, "weight_fmt", 1)
        return _Lowering("gemm", (op.m, op.n, op.k), 1, notes)
    if isinstance(op, Matmul):
        notes = _codes(op, arch, "a_fmt", 0) + _codes(op, arch, "b_fmt", 1)
        if op.batch > 1:
            notes += (f"batch of {op.batch} GEMMs back to back: one's cost times {op.batch}",)
        return _Lowering("gemm", (op.m, op.n, op.k), op.batch, notes)
    if isinstance(op, Conv2d):
        if op.stride != 1:
            raise Unmappable(op, f"stride {op.stride}: the conv kernel runs stride-1 "
                                 f"convolutions", arch.name)
        notes = _codes(op, arch, "weight_fmt", 0) + _codes(op, arch, "act_fmt", 1)
        c, kk, g = op.c_in // op.groups, op.c_out // op.groups, op.groups
        if g > 1:
            what = "depthwise: per-channel" if op.depthwise else "grouped: per-group"
            notes += (f"{what} convolutions back to back: one's cost times {g}",)
        if op.kernel == 1 and op.pad == 0:
            return _Lowering("gemm", (kk, op.batch * op.h * op.w, c), g,
                             notes + ("1x1 conv as one GEMM over batch x pixels",))
        if op.pad:
            notes += (f"image stored padded by {op.pad} in DRAM",)
        if op.batch > 1:
            notes += (f"one program per batch element: times {op.batch}",)
        return _Lowering("conv2d", (c, op.h + 2 * op.pad, op.w + 2 * op.pad, kk, op.kernel,
                                    op.kernel), g * op.batch, notes)
    raise Unmappable(op, "no accelerator kernel is costed for this kind (linear, matmul, "
                         "conv2d, attention and linear attention are)", arch.name)


@lru_cache(maxsize=16)
def _unpadded(arch: ArchSpec) -> ArchSpec:
    """``arch`` without operand padding: the estimate then times edge tiles at their extents,
    as the generated accelerator (and its cycle model) runs them."""
    return arch if arch.pad_to == 1 else replace(arch, pad_to=1)


@lru_cache(maxsize=1 << 14)
def _flow(arch: ArchSpec, dataflow: str, kind: str, shape: tuple[int, ...], exact: bool
          ) -> tuple[int, int, ProgramCost, GemmSchedule]:
    """(cycles, instructions, counts, schedule) of the library's program of one lowering
    under ``dataflow``; SpecError when it has none."""
    if kind == "gemm":
        m, n, k = shape
        ops = gemm_operands(arch, m, n, k)
        problem = GemmProblem((m, n, k))
        build, count, length = gemm_program, gemm_cost, gemm_instructions
    else:
        c, h, w, kk, r, s = shape
        ops = conv_operands(arch, c, h, w, kk, r, s)
        # the conv kernel's problem (hw.front.kernels): kernels x output columns x channels,
        # summed over the r s taps, one output per output row, the weights shared
        problem = GemmProblem((kk, w - s + 1, c), r * s, h - r + 1, a_shared=True)
        build, count, length = conv2d_program, conv2d_cost, conv2d_instructions
    schedule = choose_schedule(arch, dataflow, problem)
    if exact:
        return (*timed(arch, build(arch, dataflow, ops, schedule)), schedule)
    plan = plan_schedule(arch, dataflow, problem, schedule)
    cycles_f, _, _ = estimate(_unpadded(arch), dataflow, plan)
    return (round(cycles_f), length(arch, dataflow, ops, schedule),
            count(arch, dataflow, ops, schedule), schedule)


def _best(arch: ArchSpec, op: Op, low: _Lowering, exact: bool, dataflows: tuple[str, ...]
          ) -> tuple[str, tuple[int, int, ProgramCost, GemmSchedule]]:
    """The winning dataflow and its :func:`_flow` (module docstring's order)."""
    found, why = [], []
    for n, name in enumerate(dataflows):
        try:
            run = _flow(arch, name, low.kind, low.shape, exact)
        except SpecError as exc:
            why.append(f"{name}: {exc}")
            continue
        found.append(((run[0], run[2].dram_bytes, run[1], n), name, run))
    if not found:
        raise Unmappable(op, "no dataflow has a program: " + "; ".join(why), arch.name)
    _, name, run = min(found, key=lambda f: f[0])
    return name, run


def _cost(arch: ArchSpec, op: Op, exact_below: int, dataflows: tuple[str, ...],
          table: EnergyTable) -> OpCost:
    if isinstance(op, (Attention, LinearAttention)):
        return attention_cost(arch, op, exact_below=exact_below, dataflows=dataflows,
                              table=table)
    low = _lower(arch, op)
    if low.kind == "svdquant":
        name, cycles, ins, pc, sched, exact = _svdquant(arch, op, low, dataflows)
    else:
        exact = low.macs < exact_below
        name, (cycles, ins, pc, s) = _best(arch, op, low, exact, dataflows)
        sched = {"lowering": low.kind, "extents": low.shape, "repeat": low.repeat,
                 "tile": s.tile, "block": s.block, "k_step": s.k_step, "resident": s.resident,
                 "prefetch": s.prefetch, "resident_buffers": s.resident_buffers}
    return priced(arch, name, sched, (cycles, ins, pc), low.repeat, exact, low.notes, table)


def _svdquant(arch: ArchSpec, op: Op, low: _Lowering, dataflows: tuple[str, ...]
              ) -> tuple[str, int, int, ProgramCost, dict[str, Any], bool]:
    """(dataflow, cycles, instructions, counts, schedule, exact) of the SVDQuant kernel's
    program (:mod:`mapping.accel_svdquant`): on the first of ``dataflows`` it runs on."""
    fitting = [n for n in dataflows if arch.spatial_extents(n)[0] == 0 and
               min(arch.spatial_extents(n)[1:])]
    if not fitting:
        raise Unmappable(op, "the SVDQuant kernel needs a dataflow keeping i in time only "
                             f"(weight-stationary); given: {', '.join(dataflows)}", arch.name)
    try:
        cycles, ins, pc, whole = svdquant_cost(arch, *low.shape)
    except (SpecError, ValueError) as exc:
        raise Unmappable(op, str(exc), arch.name) from exc
    m, k, n, r = low.shape
    sched = {"lowering": "svdquant", "extents": low.shape, "repeat": 1,
             "block_rows": svdquant_block_rows(arch, svdquant_operands(arch, m, k, n, r))}
    if not whole:
        sched["costed_from"] = "programs of 2 and 3 blocks / tiles (mapping.accel_svdquant)"
    return fitting[0], cycles, ins, pc, sched, whole


def _key(op: Op) -> tuple:
    return (type(op), *(getattr(op, f.name) for f in fields(op) if f.name != "name"))


def cost_op(arch: ArchSpec, op: Op, *, exact_below: int = EXACT_BELOW,
            dataflows: tuple[str, ...] | None = None, table: EnergyTable | None = None
            ) -> OpCost:
    """The cost of ``op`` on ``arch``'s accelerator (module docstring): the best of every
    dataflow (or of ``dataflows``, names of ``arch``'s) under the kernel library's schedule;
    exact cycles for programs of fewer than ``exact_below`` MACs, estimated above; energy
    from ``table`` (default: the 45 nm table). :class:`Unmappable` for an op the accelerator
    cannot run; SpecError for an unknown dataflow name. Memoized and deterministic."""
    if isinstance(exact_below, bool) or not isinstance(exact_below, int) or exact_below < 0:
        raise ValueError(f"exact_below must be an int >= 0 (MACs), got {exact_below!r}")
    if dataflows is None:
        dataflows = tuple(d.name for d in arch.dataflows)
    else:
        dataflows = tuple(dataflows)
        if not dataflows:
            raise ValueError("dataflows must name at least one dataflow (None: all)")
        for name in dataflows:
            arch.dataflow(name)
    table = table or energy_table()
    # keyed on the architecture's identity (hashing one costs microseconds): _cache holds
    # it, so its id is not reused while its entries live
    key = (id(arch), _key(op), exact_below, dataflows, table)
    hit = _cache.get(key)
    if hit is None:
        hit = (arch, _cost(arch, op, exact_below, dataflows, table))
        if len(_cache) >= _CACHE_MAX:
            _cache.clear()
        _cache[key] = hit
    out = copy.copy(hit[1])            # a fresh record: the op's name, dicts of its own
    for name, value in (("op", op.name), ("schedule", dict(out.schedule)),
                        ("energy_breakdown", dict(out.energy_breakdown))):
        object.__setattr__(out, name, value)
    return out


def clear_cache() -> None:
    """Forget memoized costs (for timing and tests)."""
    _cache.clear()
    _flow.cache_clear()
    arch_energies.cache_clear()
    clear_attention_cache()
