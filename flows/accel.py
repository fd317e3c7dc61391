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

from golden.int_gemm import check_range, int_gemm
from hw.front.arch import ArchSpec
from hw.front.isa import Instruction
from hw.front.isa_machine import Machine, pack, unpack
from hw.front.kernels import (
    ConvOperands,
    GemmOperands,
    conv2d_cost,
    conv2d_program,
    gemm_cost,
    gemm_program,
)
from hw.front.program_cost import ProgramCost, program_cost

__all__ = ["LayerRun", "arch_summary", "run_conv", "run_gemm"]

ENGINES = ("ref",)
_ALIGN = 64


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


def _aligned(n: int) -> int:
    return -(-n // _ALIGN) * _ALIGN


def _pick(arch: ArchSpec, dataflow: str | None, cost, build) -> tuple[str, list[Instruction],
                                                                      ProgramCost]:
    """(dataflow, program, cost): the named dataflow, or the one whose closed-form ``cost``
    has the lowest roofline bound; only its program is built (and counted again)."""
    names = [arch.dataflow(dataflow).name] if dataflow else [d.name for d in arch.dataflows]
    name = min(names, key=lambda d: cost(d).roofline_cycles)
    program = build(name)
    return name, program, program_cost(program, arch)


def _check_engine(engine: str) -> None:
    if engine not in ENGINES:
        raise ValueError(f"engine {engine!r} is not available yet (engines: "
                         f"{', '.join(ENGINES)}; the RTL engines come with the generated "
                         f"accelerator)")


def run_gemm(arch: ArchSpec, m: int, n: int, k: int, *, dataflow: str | None = None,
             a_transposed: bool = False, b_transposed: bool = False, seed: int = 0,
             engine: str = "ref") -> LayerRun:
    """``C = A B`` (M x K times K x N, seeded random operands over A's/B's type) on ``arch``."""
    _check_engine(engine)
    a_t, b_t, c_t = arch.types
    b_addr = _aligned(_ALIGN + m * k * a_t.bits // 8)
    c_addr = _aligned(b_addr + k * n * b_t.bits // 8)
    ops = GemmOperands(m, n, k, _ALIGN, b_addr, c_addr, a_transposed, b_transposed)
    name, program, cost = _pick(arch, dataflow, lambda d: gemm_cost(arch, d, ops),
                                lambda d: gemm_program(arch, d, ops))
    rng = np.random.default_rng(seed)
    a = rng.integers(a_t.min, a_t.max + 1, (m, k))
    b = rng.integers(b_t.min, b_t.max + 1, (k, n))
    machine = Machine(arch, _aligned(ops.c_addr + m * n * c_t.bits // 8))
    machine.write_dram(ops.a_addr, pack(a.T if a_transposed else a, a_t))
    machine.write_dram(ops.b_addr, pack(b.T if b_transposed else b, b_t))
    machine.run(program)
    out = unpack(machine.read_dram(ops.c_addr, m * n * c_t.bits // 8), m * n, c_t)
    expected = int_gemm(a, b, a_t, b_t, c_t.bits)
    return LayerRun(f"gemm {m}x{n}x{k}", arch.name, name, engine, len(program), cost,
                    arch.pes, bool(np.array_equal(out.reshape(m, n), expected)))


def run_conv(arch: ArchSpec, channels: int, height: int, width: int, kernels: int, r: int,
             s: int, *, dataflow: str | None = None, seed: int = 0,
             engine: str = "ref") -> LayerRun:
    """A valid stride-1 convolution (seeded random image and weights) on ``arch``."""
    _check_engine(engine)
    a_t, _, c_t = arch.types
    image_bytes = channels * height * width * a_t.bits // 8
    w_addr = _aligned(_ALIGN + image_bytes)
    o_addr = _aligned(w_addr + kernels * channels * r * s * a_t.bits // 8)
    ops = ConvOperands(channels, height, width, kernels, r, s, _ALIGN, w_addr, o_addr)
    name, program, cost = _pick(arch, dataflow, lambda d: conv2d_cost(arch, d, ops),
                                lambda d: conv2d_program(arch, d, ops))
    rng = np.random.default_rng(seed)
    image = rng.integers(a_t.min, a_t.max + 1, (channels, height, width))
    weights = rng.integers(a_t.min, a_t.max + 1, (kernels, channels, r, s))
    shape = ops.out_shape
    size = shape[0] * shape[1] * shape[2]
    machine = Machine(arch, _aligned(o_addr + size * c_t.bits // 8))
    machine.write_dram(ops.i_addr, pack(image, a_t))
    machine.write_dram(ops.w_addr, pack(weights.transpose(2, 3, 0, 1), a_t))
    machine.run(program)
    out = unpack(machine.read_dram(o_addr, size * c_t.bits // 8), size, c_t).reshape(shape)
    expected = np.zeros(shape, dtype=np.int64)
    for dr in range(r):
        for ds in range(s):
            window = image[:, dr:dr + shape[1], ds:ds + shape[2]]
            expected += np.einsum("kc,cyx->kyx", weights[:, :, dr, ds], window)
    check_range("convolution output", expected, c_t)
    return LayerRun(f"conv {channels}x{height}x{width} -> {kernels}, {r}x{s}", arch.name, name,
                    engine, len(program), cost, arch.pes, bool(np.array_equal(out, expected)))


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
