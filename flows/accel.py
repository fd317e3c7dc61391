"""Running layers on an architecture: lay the operands out in DRAM, build the kernel
library's program, run it, compare with golden, and report what it cost.

Engines: ``ref`` runs the program on the reference machine (:mod:`hw.front.isa_machine`, the
instruction set's semantics); the generated accelerator's RTL engines come with it. Without a
``dataflow`` the one with the lowest roofline bound is chosen (ties: the architecture's
order).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from golden.int_gemm import int_gemm
from golden.loop_nest import conv2d
from hw.front import kernel_runs
from hw.front.arch import ArchSpec
from hw.front.kernel_runs import KernelRun, conv_operands, gemm_operands
from hw.front.kernels import conv2d_cost, gemm_cost
from hw.front.program_cost import ProgramCost, program_cost

__all__ = ["LayerRun", "arch_summary", "run_conv", "run_gemm"]

ENGINES = ("ref",)


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

    def report(self) -> dict:
        """The ``lego run`` JSON line (cycles come with the RTL engines: None here)."""
        c = self.cost
        return {"layer": self.layer, "arch": self.arch, "dataflow": self.dataflow,
                "engine": self.engine, "bit_exact": self.bit_exact, "cycles": None,
                "model_cycles": None, "roofline_cycles": c.roofline_cycles,
                "macs": c.macs, "padded_macs": c.padded_macs,
                "utilization_bound": round(c.macs / (self.pes * c.roofline_cycles), 4),
                "dram_bytes": c.dram_bytes, "instructions": self.instructions}


def _pick(arch: ArchSpec, dataflow: str | None, cost) -> str:
    """The named dataflow, or the one whose closed-form ``cost`` has the lowest roofline
    bound (ties: the architecture's order)."""
    names = [arch.dataflow(dataflow).name] if dataflow else [d.name for d in arch.dataflows]
    return min(names, key=lambda d: cost(d).roofline_cycles)


def _check_engine(engine: str) -> None:
    if engine not in ENGINES:
        raise ValueError(f"engine {engine!r} is not available yet (engines: "
                         f"{', '.join(ENGINES)}; the RTL engines come with the generated "
                         f"accelerator)")


def _operands(rng: np.random.Generator, dtype, shape: tuple[int, ...]) -> np.ndarray:
    return rng.integers(dtype.min, dtype.max + 1, shape)


def run_gemm(arch: ArchSpec, m: int, n: int, k: int, *, dataflow: str | None = None,
             a_transposed: bool = False, b_transposed: bool = False, seed: int = 0,
             engine: str = "ref") -> LayerRun:
    """``C = A B`` (M x K times K x N, seeded random operands over A's/B's type) on ``arch``."""
    _check_engine(engine)
    ops = gemm_operands(arch, m, n, k, a_transposed, b_transposed)
    name = _pick(arch, dataflow, lambda d: gemm_cost(arch, d, ops))
    rng = np.random.default_rng(seed)
    a, b = _operands(rng, arch.types[0], (m, k)), _operands(rng, arch.types[1], (k, n))
    run = kernel_runs.run_gemm(arch, name, ops, a, b)
    expected = int_gemm(a, b, arch.types[0], arch.types[1], arch.types[2].bits)
    return _layer_run(f"gemm {m}x{n}x{k}", arch, name, engine, run, expected)


def run_conv(arch: ArchSpec, channels: int, height: int, width: int, kernels: int, r: int,
             s: int, *, dataflow: str | None = None, seed: int = 0,
             engine: str = "ref") -> LayerRun:
    """A valid stride-1 convolution (seeded random image and weights) on ``arch``."""
    _check_engine(engine)
    ops = conv_operands(arch, channels, height, width, kernels, r, s)
    name = _pick(arch, dataflow, lambda d: conv2d_cost(arch, d, ops))
    rng = np.random.default_rng(seed)
    image = _operands(rng, arch.types[0], (channels, height, width))
    weights = _operands(rng, arch.types[0], (kernels, channels, r, s))
    run = kernel_runs.run_conv(arch, name, ops, image, weights)
    expected = conv2d(image, weights, arch.types[2].bits)
    return _layer_run(f"conv {channels}x{height}x{width} -> {kernels}, {r}x{s}", arch, name,
                      engine, run, expected)


def _layer_run(layer: str, arch: ArchSpec, name: str, engine: str, run: KernelRun,
               expected: np.ndarray) -> LayerRun:
    return LayerRun(layer, arch.name, name, engine, len(run.program),
                    program_cost(run.program, arch), arch.pes,
                    bool(np.array_equal(run.output, expected)))


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
