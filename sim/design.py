"""Run a generated design on operands and compare it with golden, bit for bit.

``simulate_design(spec, operands)`` plans and emits the design
(:func:`hw.rtl.emit.emit_design`), builds it in Verilator (cached), loads the operands through
the host port, runs, reads the output back and compares with
:func:`golden.loop_nest.affine_mac`. Engines: ``"cocotb"`` (Verilator, the checker of
behaviour), ``"fast"`` (a generated C++ Verilator harness for long runs, :mod:`sim.fast`) and
``"pysim"`` (Amaranth's simulator: no build, for many small designs).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from golden.loop_nest import affine_mac
from hw.front.fusion import plan_fused
from hw.front.spec import DesignSpec
from hw.ir.backend import BackendOptions
from hw.rtl.emit import emit_design
from hw.rtl.generate import GeneratedArray

from .runner import build, run_test

__all__ = ["DesignRun", "golden_output", "random_operands", "simulate_design"]

ENGINES = ("cocotb", "fast", "pysim")


@dataclass(frozen=True)
class DesignRun:
    output: np.ndarray
    expected: np.ndarray
    cycles: int
    expected_cycles: int
    run_wall_s: float
    build_s: float
    build_cached: bool
    waves: Path | None = None

    @property
    def bit_exact(self) -> bool:
        return bool(np.array_equal(self.output, self.expected))

    @property
    def sim_cycles_per_s(self) -> float:
        return self.cycles / self.run_wall_s if self.run_wall_s > 0 else float("inf")


def random_operands(spec: DesignSpec, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded operands over each input type's full range (first element at the minimum)."""
    rng = np.random.default_rng(seed)
    out = {}
    for x in spec.op.inputs:
        shape = spec.op.tensor_extent(x, spec.op.extents)
        v = rng.integers(x.dtype.min, x.dtype.max + 1, size=shape, dtype=np.int64)
        v.flat[0] = x.dtype.min
        v.flat[-1] = x.dtype.max
        out[x.name] = v
    return out


def golden_output(spec: DesignSpec, operands: dict[str, np.ndarray]) -> np.ndarray:
    op = spec.op
    a, b = op.inputs
    c = op.output
    return affine_mac(op.extents, operands[a.name], (a.access, a.offset),
                      operands[b.name], (b.access, b.offset),
                      op.tensor_extent(c, op.extents), (c.access, c.offset),
                      acc_bits=c.dtype.bits)


def simulate_design(specs: Sequence[DesignSpec],
                    operands: dict[str, np.ndarray] | None = None, *,
                    seed: int = 0, engine: str = "cocotb", waves: bool = False,
                    bench_mode: str = "bulk", mode: int = 0,
                    backend: BackendOptions | None = None) -> DesignRun:
    """Simulate the design of ``specs`` (one dataflow, or several fused on one array) running
    dataflow ``mode`` on ``operands`` (random from ``seed`` when omitted). ``bench_mode``
    (cocotb only): "bulk" waits once for ``done``; "per_cycle" wakes Python on every clock
    edge (the result is the same). ``backend``: the
    datapath is emitted from the back end's optimized graph (pipelined designs run
    ``latency`` cycles longer; ``expected_cycles`` includes it).
    """
    if isinstance(specs, DesignSpec):
        raise TypeError("simulate_design takes a sequence of specs: pass [spec]")
    specs = list(specs)
    if not specs:
        raise ValueError("simulate_design needs at least one spec")
    if not 0 <= mode < len(specs):
        raise ValueError(f"mode must be in 0..{len(specs) - 1}, got {mode}")
    spec = specs[mode]
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    if bench_mode not in ("bulk", "per_cycle"):
        raise ValueError(f"bench_mode must be 'bulk' or 'per_cycle', got {bench_mode!r}")
    if waves and engine != "cocotb":
        raise ValueError("waves are recorded by the cocotb engine only")
    operands = random_operands(spec, seed) if operands is None else operands
    if engine == "pysim":   # Amaranth's simulator runs the FUs as Amaranth submodules
        plans = plan_fused(specs)
        top = GeneratedArray(plans, fu_style="inline", backend=backend)
    else:
        _, top, verilog = emit_design(specs, backend=backend)
    host = top.hosts[mode]
    try:
        writes = host.input_writes(operands)    # validates shapes and ranges
        expected = golden_output(spec, operands)
    except ValueError:
        top._MustUse__silence = True            # rejected before simulation: not a leak
        raise
    reads = host.output_reads()
    expected_cycles = top.run_cycles(mode)
    max_cycles = expected_cycles + 16
    if engine == "pysim":
        from .pysim import run_pysim

        values, cycles = run_pysim(top, writes, reads, max_cycles, mode=mode)
        return DesignRun(host.decode_output(values), expected, cycles, expected_cycles, 0.0,
                         0.0, True)
    if engine == "fast":
        from .fast import build_fast, run_fast

        built = build_fast(verilog, spec.name, train_modes=len(specs))
        run = run_fast(built, writes, reads, max_cycles=max_cycles, mode=mode)
        # sim.fast counts the start-sampling edge too; every engine here counts the edges after
        # it, up to and including the one that raises done (= cycles busy is high).
        values, cycles, wall = run.values, run.run_cycles - 1, run.run_wall_s
        waves_path = None
    else:
        built = build(verilog, spec.name, waves=waves)
        result = run_test(built, "sim.benches.design_bench",
                          {"writes": writes, "reads": reads, "max_cycles": max_cycles,
                           "mode": bench_mode, "dataflow": mode},
                          seed=seed, waves=waves)
        values = [int(v) for v in result.output["values"]]
        cycles, wall = int(result.output["cycles"]), float(result.output["run_wall_s"])
        waves_path = result.waves
    return DesignRun(host.decode_output(values), expected, cycles, expected_cycles, wall,
                     built.seconds, built.cached, waves_path)
