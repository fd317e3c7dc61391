"""``lego run ARCH --workload ...``: a whole workload (an SVDQuant linear layer with its
low-rank branch, a linear-attention head, a DuoAttention KV head over a prompt and decode
steps) as accelerator programs on seeded random inputs, checked against golden's fixed-point
model.

Engines: ``ref`` (the instruction set's reference machine, the default) runs every workload;
``fast`` and ``cocotb`` run the program on the generated accelerator's RTL when it executes
every command in it (:data:`hw.front.accel_params.RTL_UNIT_MODES`) and then require its final
DRAM to equal the reference machine's; a workload of several programs (a DuoAttention head's
reset and steps) runs them as one, the state they share persisting as it does on the
reference machine. ``model_cycles`` is
the cycle model's (``null`` for programs with commands the RTL does not execute), ``cycles``
the RTL's. The JSON line has the GEMM runs' fields otherwise (MACs, DRAM bytes,
instructions; ``unit_rows``: rows through each unit).

Layer: flows, the command line (imports mapping, hw, sim, sw, golden).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from golden.attention_cache_fixed import FullCacheFixed, StreamingCacheFixed
from golden.attention_fixed import logit_multiplier
from golden.linear_attention_chain import linear_attention_chain_int
from golden.svdquant_fixed import SVDQuantFixedSpec, quantize_branch, svdquant_fixed_int
from golden.svdquant_ops import quantize_int4
from hw.front.accel_params import accel_params
from hw.front.accel_timing import accel_timing
from hw.front.arch import ArchSpec
from hw.front.isa import Instruction, ProgramError
from hw.front.isa_machine import Machine
from hw.front.kernel_attention import run_linear_attention
from hw.front.kernel_duo import DuoHead, attention_config
from hw.front.kernel_svdquant import run_svdquant_linear
from hw.front.spec_model import SpecError

__all__ = ["WORKLOADS", "WorkloadRun", "run_workload"]

ENGINES = ("ref", "fast", "cocotb")

#: workload -> (the ``--shape`` fields, their defaults)
WORKLOADS: dict[str, tuple[tuple[str, ...], tuple[int, ...]]] = {
    "svdquant": (("M", "K", "N", "R"), (16, 256, 64, 32)),
    "linear-attention": (("N", "D", "DV"), (256, 32, 32)),
    "duo-attention": (("G", "T", "D"), (4, 96, 64)),
}
_UNITS = {"svdquant": ("requant", "dequant"),
          "linear-attention": ("requant", "normalizer"),
          "duo-attention": ("requant", "softmax", "normalizer", "kv_cache")}
_CODE_SCALE = 1 / 64          # the float value of one q / k code (sets the logit multiplier)


@dataclass(frozen=True)
class WorkloadRun:
    """What ran and what it moved; :meth:`report` is the JSON line."""

    layer: str
    arch: str
    pes: int
    bit_exact: bool
    instructions: int
    counts: dict[str, int]
    unit_rows: dict[str, int]
    engine: str = "ref"
    model_cycles: int | None = None     #: None when the RTL does not execute the programs
    cycles: int | None = None           #: measured on the RTL (None for ``ref``)
    cycles_per_s: float | None = None

    def report(self) -> dict:
        """The JSON line; ``utilization`` = MACs / (PEs x cycles), of the measured cycles
        (the model's with ``ref``)."""
        c = self.counts
        cycles = self.model_cycles if self.cycles is None else self.cycles
        macs = c.get("macs", 0)
        return {"layer": self.layer, "arch": self.arch, "dataflow": None, "engine": self.engine,
                "bit_exact": self.bit_exact, "cycles": self.cycles,
                "model_cycles": self.model_cycles, "roofline_cycles": None,
                "utilization": None if cycles is None else round(macs / (self.pes * cycles), 4),
                "macs": macs,
                "dram_bytes": c.get("dram_read_bytes", 0) + c.get("dram_written_bytes", 0),
                "instructions": self.instructions,
                "unit_rows": dict(sorted(self.unit_rows.items())),
                "cycles_per_s": None if self.cycles_per_s is None else round(self.cycles_per_s)}


@dataclass(frozen=True)
class _Ran:
    """A workload as it ran on the reference machine: its programs (one per step), the
    machine after the last, the DRAM before the first, and whether its output was golden's."""

    layer: str
    exact: bool
    programs: tuple[tuple[Instruction, ...], ...]
    machine: Machine
    dram_in: bytes


def _shape(workload: str, shape: tuple[int, ...] | None) -> tuple[int, ...]:
    names, default = WORKLOADS[workload]
    shape = default if shape is None else tuple(shape)
    if len(shape) != len(names) or min(shape) < 1:
        raise ValueError(f"--shape for {workload} is {','.join(names)} (positive ints), got "
                         f"{','.join(map(str, shape))}")
    return shape


def _linear_attention(arch: ArchSpec, shape: tuple[int, ...], rng) -> _Ran:
    n, d, dv = shape
    q, k, v = (rng.integers(-128, 128, s) for s in ((n, d), (n, d), (n, dv)))
    run = run_linear_attention(arch, q, k, v)
    nrm = arch.units.normalizer
    want = linear_attention_chain_int(q, k, v, nrm.out_frac_bits, nrm.den_bits,
                                      nrm.recip_frac_bits).out
    return _Ran(f"linear-attention {n}x{d}x{dv}", bool(np.array_equal(run.output, want)),
                (tuple(run.program),), run.machine, run.dram_in)


def _svdquant(arch: ArchSpec, shape: tuple[int, ...], rng) -> _Ran:
    """A layer of random float activations and weights (std 1 and 0.1) and a rank-R branch,
    quantized as SVDQuant does (int4 groups, the int8 branch), then run."""
    m, k, n, r = shape
    group = arch.units.dequant.group
    x = rng.standard_normal((m, k)).astype(np.float32)
    w, down = ((rng.standard_normal(s) * 0.1).astype(np.float32) for s in ((n, k), (r, k)))
    up = (rng.standard_normal((n, r)) * 0.1).astype(np.float32)
    qx, sx = quantize_int4(x, group)
    qw, sw = quantize_int4(w, group)
    b = quantize_branch(x, down, up, 8)
    ops = (qx, sx, qw, sw, b.xl, b.sxl, b.l1q, b.l2q, b.sl2)
    run = run_svdquant_linear(arch, *ops)
    spec = SVDQuantFixedSpec(group_size=group, branch_bits=8,
                             dequant=arch.units.dequant.golden_spec())
    want = np.asarray(svdquant_fixed_int(*ops, spec).y, np.float32)
    exact = bool(np.array_equal(run.output.view(np.int32), want.view(np.int32)))
    return _Ran(f"svdquant {m}x{k}x{n} rank {r}", exact, (tuple(run.program),), run.machine,
                run.dram_in)


def _duo_attention(arch: ArchSpec, shape: tuple[int, ...], rng, window, chunk: int,
                   decode: int) -> _Ran:
    g, t, d = shape
    if not 0 <= decode < t:
        raise ValueError(f"--decode {decode} must leave a prompt: 0 <= decode < T={t}")
    if window is not None and (len(window) != 2 or window[1] < 1 or window[0] < 0):
        raise ValueError(f"--window is SINK,RECENT with RECENT >= 1, got {window}")
    q, k, v = rng.integers(-128, 128, (g, t, d)), *(rng.integers(-128, 128, (t, d))
                                                  for _ in range(2))
    cfg = attention_config(arch)
    fits = DuoHead.largest_chunk(arch, g, t, d, d, window, limit=chunk)
    if fits < 1:
        raise SpecError(f"a {g}x{t}x{d} head does not fit {arch.name!r}'s memories with any "
                        "chunk")
    chunk = fits
    mult, shift = logit_multiplier(_CODE_SCALE, _CODE_SCALE, d, cfg)
    head = DuoHead(arch, q, k, v, mult, shift, *(window or (None, None)),
                   max_chunk=min(chunk, t))
    ref = (StreamingCacheFixed(d, *window, mult, shift, cfg) if window
           else FullCacheFixed(d, mult, shift, cfg))
    steps = [min(chunk, t - decode - s) for s in range(0, t - decode, chunk)] + [1] * decode
    exact, programs, start = True, [tuple(head.reset_program)], 0
    dram_in = head.machine.dram.tobytes()       # the reset changed no memory
    for c in steps:
        got = head.step(c)
        programs.append(tuple(head.last_program))
        exact &= bool(np.array_equal(got, ref.step(q[:, start:start + c], k[start:start + c],
                                                   v[start:start + c])))
        start += c
    kind = f"streaming {window[0]}+{window[1]}" if window else "retrieval"
    return _Ran(f"duo-attention {kind} {g}x{t}x{d} ({t - decode} prefill in chunks of "
                f"{chunk}, {decode} decode)", exact, tuple(programs), head.machine, dram_in)


def run_workload(arch: ArchSpec, workload: str, shape: tuple[int, ...] | None = None, *,
                 seed: int = 0, window: tuple[int, ...] | None = None, chunk: int = 32,
                 decode: int = 4, engine: str = "ref") -> WorkloadRun:
    """Run ``workload`` (:data:`WORKLOADS`) at ``shape`` on ``arch``'s reference machine, check
    it against golden and, with ``engine`` ``fast`` or ``cocotb``, run its program on the RTL
    too (module docstring); ``window`` (sink, recent) makes a DuoAttention head streaming;
    its prefill chunk is ``chunk`` or the largest smaller one that fits the memories."""
    from .accel_engines import RTL_ENGINES, rtl_lacks

    if workload not in WORKLOADS:
        raise ValueError(f"unknown workload {workload!r} (workloads: {', '.join(WORKLOADS)})")
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r} (engines: {', '.join(ENGINES)})")
    if chunk < 1:
        raise ValueError(f"--chunk must be >= 1, got {chunk}")
    missing = [u for u in _UNITS[workload] if getattr(arch.units, u) is None]
    if missing:
        raise SpecError(f"architecture {arch.name!r} has no {', '.join(missing)} unit(s), which "
                        f"{workload} needs (units: {', '.join(arch.units.present()) or 'none'})")
    rng = np.random.default_rng(seed)
    shape = _shape(workload, shape)
    if workload == "svdquant":
        ran = _svdquant(arch, shape, rng)
    elif workload == "linear-attention":
        ran = _linear_attention(arch, shape, rng)
    else:
        ran = _duo_attention(arch, shape, rng, window, chunk, decode)
    lacks = next((r for p in ran.programs if (r := rtl_lacks(p))), None)
    # the steps' programs one after the other: the state they share (the KV cache in the
    # scratchpad, the descriptors) persists, and no host step touches DRAM between them
    program = [ins for p in ran.programs for ins in p]
    model = None if lacks else accel_timing(program, accel_params(arch)).cycles
    m = ran.machine
    run = WorkloadRun(ran.layer, arch.name, arch.array[0] * arch.array[1], ran.exact,
                      sum(map(len, ran.programs)), dict(m.counts), dict(m.unit_rows), engine,
                      model)
    if engine in RTL_ENGINES:
        if lacks:
            raise ProgramError(f"--engine {engine}: {lacks}; run {workload} with --engine ref")
        return _on_rtl(arch, ran, run, engine)
    return run


def _on_rtl(arch: ArchSpec, ran: _Ran, run: WorkloadRun, engine: str) -> WorkloadRun:
    """``run`` with its program run on the RTL: cycles measured, bit-exact also requiring the
    RTL's final DRAM to be the reference machine's."""
    from dataclasses import replace

    from .accel_engines import run_program

    program = [ins for p in ran.programs for ins in p]
    rtl = run_program(arch, program, ran.dram_in, engine=engine,
                      expected_cycles=run.model_cycles)
    same = rtl.dram == ran.machine.dram.tobytes()
    return replace(run, bit_exact=run.bit_exact and same, cycles=rtl.cycles,
                   cycles_per_s=rtl.cycles_per_s)
