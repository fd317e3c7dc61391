"""Running layers on an architecture: lay the operands out in DRAM, build the kernel
library's program, run it, compare with golden, and report what it cost.

Engines: ``fast`` and ``cocotb`` run the program on the generated accelerator's RTL
(:mod:`flows.accel_engines`), ``ref`` on the reference machine (:mod:`hw.front.isa_machine`,
the instruction set's semantics). Every run also executes on the reference machine: a run
is ``bit_exact`` when its output equals golden's and the RTL's final DRAM is the machine's,
byte for byte. ``model_cycles`` is the accelerator's cycle model
(:mod:`hw.front.accel_timing`), ``cycles`` the RTL's measured ones. Without a ``dataflow``
the one whose program the model runs fastest is chosen (ties: the architecture's order; for
an architecture the generator cannot build, the lowest roofline bound).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np

from golden.int_gemm import int_gemm
from golden.loop_nest import conv2d
from hw.front import kernel_runs
from hw.front.accel_params import AccelParams, accel_params
from hw.front.accel_timing import accel_timing
from hw.front.arch import ArchSpec
from hw.front.kernel_runs import KernelRun, conv_operands, gemm_operands
from hw.front.kernels import (
    conv2d_cost,
    conv2d_instructions,
    conv2d_program,
    gemm_cost,
    gemm_instructions,
    gemm_program,
)
from hw.front.program_cost import ProgramCost, program_cost
from hw.front.spec_model import SpecError

__all__ = ["LayerRun", "arch_summary", "run_conv", "run_gemm"]

ENGINES = ("fast", "cocotb", "ref")


@dataclass(frozen=True)
class LayerRun:
    """One layer on one architecture: the program's counts and, once run, the check."""

    layer: str
    arch: str
    dataflow: str
    engine: str
    instructions: int
    cost: ProgramCost
    pes: int
    bit_exact: bool
    model_cycles: int | None            #: None when the generator cannot build ``arch``
    cycles: int | None = None           #: measured on the RTL (None for ``ref``)
    cycles_per_s: float | None = None

    def report(self) -> dict:
        """The ``lego run`` JSON line; ``utilization`` = MACs / (PEs x cycles), of the
        measured cycles (the model's with ``ref``)."""
        c = self.cost
        cycles = self.model_cycles if self.cycles is None else self.cycles
        utilization = None if cycles is None else round(c.macs / (self.pes * cycles), 4)
        return {"layer": self.layer, "arch": self.arch, "dataflow": self.dataflow,
                "engine": self.engine, "bit_exact": self.bit_exact, "cycles": self.cycles,
                "model_cycles": self.model_cycles, "roofline_cycles": c.roofline_cycles,
                "utilization": utilization,
                "macs": c.macs, "padded_macs": c.padded_macs,
                "utilization_bound": round(c.macs / (self.pes * c.roofline_cycles), 4),
                "dram_bytes": c.dram_bytes, "instructions": self.instructions,
                "cycles_per_s": None if self.cycles_per_s is None else round(self.cycles_per_s)}


def _accelerator(arch: ArchSpec) -> AccelParams | None:
    """The accelerator the generator builds for ``arch``, or None (the reference machine
    still runs its programs)."""
    try:
        return accel_params(arch)
    except SpecError:
        return None


def _pick(arch: ArchSpec, dataflow: str | None, program, cost) -> tuple[str, list | None]:
    """The named dataflow, or the one whose ``program`` the cycle model runs fastest (ties:
    the architecture's order); without an accelerator, the lowest roofline bound of
    ``cost``. With it, the program when it was built here (None otherwise)."""
    names = [arch.dataflow(dataflow).name] if dataflow else [d.name for d in arch.dataflows]
    params = _accelerator(arch)
    if len(names) == 1:
        return names[0], None
    if params is None:
        return min(names, key=lambda d: cost(d).roofline_cycles), None
    built = [(accel_timing(p, params).cycles, d, p) for d in names for p in [program(d)]]
    _, name, chosen = min(built, key=lambda b: b[0])
    return name, chosen


#: programs longer than this get a line on stderr before the silent phases (building them,
#: modelling them, the reference machine: seconds to minutes)
LONG_PROGRAM = 50_000


def _announce(instructions: int) -> None:
    if instructions > LONG_PROGRAM:
        print(f"lego run: programs of up to {instructions:,} instructions: building, modelling "
              f"and running them on the reference machine first (minutes)", file=sys.stderr,
              flush=True)


def _check_engine(engine: str) -> None:
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r} (engines: {', '.join(ENGINES)})")


def _operands(rng: np.random.Generator, dtype, shape: tuple[int, ...]) -> np.ndarray:
    return rng.integers(dtype.min, dtype.max + 1, shape)


def run_gemm(arch: ArchSpec, m: int, n: int, k: int, *, dataflow: str | None = None,
             a_transposed: bool = False, b_transposed: bool = False, seed: int = 0,
             engine: str = "fast") -> LayerRun:
    """``C = A B`` (M x K times K x N, seeded random operands over A's/B's type) on ``arch``."""
    _check_engine(engine)
    ops = gemm_operands(arch, m, n, k, a_transposed, b_transposed)
    _announce(max(gemm_instructions(arch, d.name, ops) for d in arch.dataflows))
    name, program = _pick(arch, dataflow, lambda d: gemm_program(arch, d, ops),
                          lambda d: gemm_cost(arch, d, ops))
    rng = np.random.default_rng(seed)
    a, b = _operands(rng, arch.types[0], (m, k)), _operands(rng, arch.types[1], (k, n))
    run = kernel_runs.run_gemm(arch, name, ops, a, b, program=program)
    expected = int_gemm(a, b, arch.types[0], arch.types[1], arch.types[2].bits)
    return _layer_run(f"gemm {m}x{n}x{k}", arch, name, engine, run, expected)


def run_conv(arch: ArchSpec, channels: int, height: int, width: int, kernels: int, r: int,
             s: int, *, dataflow: str | None = None, seed: int = 0,
             engine: str = "fast") -> LayerRun:
    """A valid stride-1 convolution (seeded random image and weights) on ``arch``."""
    _check_engine(engine)
    ops = conv_operands(arch, channels, height, width, kernels, r, s)
    _announce(max(conv2d_instructions(arch, d.name, ops) for d in arch.dataflows))
    name, program = _pick(arch, dataflow, lambda d: conv2d_program(arch, d, ops),
                          lambda d: conv2d_cost(arch, d, ops))
    rng = np.random.default_rng(seed)
    image = _operands(rng, arch.types[0], (channels, height, width))
    weights = _operands(rng, arch.types[0], (kernels, channels, r, s))
    run = kernel_runs.run_conv(arch, name, ops, image, weights, program=program)
    expected = conv2d(image, weights, arch.types[2].bits)
    return _layer_run(f"conv {channels}x{height}x{width} -> {kernels}, {r}x{s}", arch, name,
                      engine, run, expected)


def _layer_run(layer: str, arch: ArchSpec, name: str, engine: str, run: KernelRun,
               expected: np.ndarray) -> LayerRun:
    try:
        params = accel_params(arch)
    except SpecError as exc:
        if engine != "ref":
            raise SpecError(f"{exc} (--engine ref runs the program on the reference machine "
                            f"only)") from None
        params = None
    model = None if params is None else accel_timing(run.program, params).cycles
    exact = bool(np.array_equal(run.output, expected))
    cycles = rate = None
    if engine != "ref":
        from .accel_engines import run_program

        rtl = run_program(arch, run.program, run.dram_in, engine=engine,
                          expected_cycles=model)
        exact = exact and rtl.dram == run.machine.dram.tobytes()
        cycles, rate = rtl.cycles, rtl.cycles_per_s
    return LayerRun(layer, arch.name, name, engine, len(run.program),
                    program_cost(run.program, arch), arch.pes, exact, model, cycles, rate)


def arch_summary(arch: ArchSpec) -> str:
    """A few lines saying what ``arch`` is (``lego arch``)."""
    a, b, c = arch.types
    sp, acc = arch.scratchpad, arch.accumulator
    lines = [f"{arch.name}: {'x'.join(map(str, arch.array))} array ({arch.pes} MACs), {a} x {b} "
             f"-> {c}, {arch.clock_mhz:g} MHz",
             f"scratchpad  {sp.capacity_bytes // 1024} KiB in {sp.banks} banks of "
             f"{sp.rows_per_bank} x {sp.row_bytes} B rows",
             f"accumulator {acc.capacity_bytes // 1024} KiB in {acc.banks} banks of "
             f"{acc.rows_per_bank} x {acc.row_bytes} B rows",
             f"dram        {arch.dram.bytes_per_cycle} B/cycle ({arch.dram_gbytes_per_s:g} GB/s),"
             f" latency {arch.dram.latency_cycles} cycles; operands padded to {arch.pad_to}"]
    for d in arch.dataflows:
        spatial = arch.spatial_extents(d.name)
        on_array = ", ".join(f"{dim}<={e}" for dim, e in zip("ijk", spatial, strict=True) if e)
        lines.append(f"dataflow    {d.name}: {on_array} on the array")
    return "\n".join(lines)
