"""Kernel-library programs run on the reference machine: operands laid out in DRAM at aligned
addresses, the program built and run, the result read back.

One place for what ``lego run`` (:mod:`flows.accel`) and the kernel library's tests both do;
neither compares here: they hold the output against golden themselves.

Layer: hw.front, the planning layer (plain Python, no Amaranth).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .arch import ArchSpec
from .isa import Instruction
from .isa_machine import Machine, pack, unpack
from .kernels import ConvOperands, GemmOperands, Schedule, conv2d_program, gemm_program

__all__ = ["KernelRun", "conv_operands", "gemm_operands", "run_conv", "run_gemm"]

ALIGN = 64      #: every tensor starts on a 64-byte boundary


def _aligned(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


@dataclass(frozen=True)
class KernelRun:
    """The output read back (in the layer's axis order), the program, the machine after the
    run and its DRAM before it (what another engine starts from)."""

    output: np.ndarray
    program: list[Instruction]
    machine: Machine
    dram_in: bytes


def gemm_operands(arch: ArchSpec, m: int, n: int, k: int, a_transposed: bool = False,
                  b_transposed: bool = False) -> GemmOperands:
    """A, B and C of an ``M x N x K`` GEMM one after the other from byte ``ALIGN``."""
    a_t, b_t, _ = arch.types
    b_addr = _aligned(ALIGN + m * k * a_t.bits // 8)
    c_addr = _aligned(b_addr + k * n * b_t.bits // 8)
    return GemmOperands(m, n, k, ALIGN, b_addr, c_addr, a_transposed, b_transposed)


def conv_operands(arch: ArchSpec, channels: int, height: int, width: int, kernels: int,
                  r: int, s: int) -> ConvOperands:
    """Image, weights and output of a convolution one after the other from byte ``ALIGN``."""
    bits = arch.types[0].bits
    w_addr = _aligned(ALIGN + channels * height * width * bits // 8)
    o_addr = _aligned(w_addr + kernels * channels * r * s * bits // 8)
    return ConvOperands(channels, height, width, kernels, r, s, ALIGN, w_addr, o_addr)


def _read(machine: Machine, addr: int, shape: tuple[int, ...]) -> np.ndarray:
    c_t = machine.arch.types[2]
    size = int(np.prod(shape))
    return unpack(machine.read_dram(addr, size * c_t.bits // 8), size, c_t).reshape(shape)


def run_gemm(arch: ArchSpec, dataflow: str, ops: GemmOperands, a: np.ndarray, b: np.ndarray,
             tile: Schedule = None, *, program: Sequence[Instruction] | None = None
             ) -> KernelRun:
    """``C = A B`` of ``a`` (M x K) and ``b`` (K x N), stored as ``ops`` says, on the
    reference machine; ``output`` is C (M x N). ``program``: the caller's already built
    :func:`gemm_program` of ``ops`` (not built again)."""
    if a.shape != (ops.m, ops.k) or b.shape != (ops.k, ops.n):
        raise ValueError(f"operands {a.shape} and {b.shape} do not match the GEMM "
                         f"{ops.m}x{ops.n}x{ops.k}")
    program = gemm_program(arch, dataflow, ops, tile) if program is None else list(program)
    machine = Machine(arch, _aligned(ops.c_addr + ops.m * ops.n * arch.types[2].bits // 8))
    machine.write_dram(ops.a_addr, pack(a.T if ops.a_transposed else a, arch.types[0]))
    machine.write_dram(ops.b_addr, pack(b.T if ops.b_transposed else b, arch.types[1]))
    dram_in = machine.dram.tobytes()
    machine.run(program)
    return KernelRun(_read(machine, ops.c_addr, (ops.m, ops.n)), program, machine, dram_in)


def run_conv(arch: ArchSpec, dataflow: str, ops: ConvOperands, image: np.ndarray,
             weights: np.ndarray, tile: Schedule = None, *,
             program: Sequence[Instruction] | None = None) -> KernelRun:
    """The convolution of ``image`` (C x H x W) and ``weights`` (K x C x R x S; laid out
    R x S x K x C in DRAM) on the reference machine; ``output`` is K x Y x X. ``program``:
    the caller's already built :func:`conv2d_program` of ``ops``."""
    expected = ((ops.channels, ops.height, ops.width), (ops.kernels, ops.channels, ops.r, ops.s))
    if (image.shape, weights.shape) != expected:
        raise ValueError(f"image {image.shape} and weights {weights.shape} do not match the "
                         f"convolution {expected}")
    program = conv2d_program(arch, dataflow, ops, tile) if program is None else list(program)
    shape = ops.out_shape
    machine = Machine(arch, _aligned(ops.o_addr + int(np.prod(shape)) * arch.types[2].bits
                                     // 8))
    machine.write_dram(ops.i_addr, pack(image, arch.types[0]))
    machine.write_dram(ops.w_addr, pack(weights.transpose(2, 3, 0, 1), arch.types[0]))
    dram_in = machine.dram.tobytes()
    machine.run(program)
    return KernelRun(_read(machine, ops.o_addr, shape), program, machine, dram_in)
