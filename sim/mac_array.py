"""Run a GEMM on the :class:`hw.mac_array.MacArray` in Verilator and compare with golden."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from golden.int_gemm import check_range, int_gemm
from hw.emit import to_verilog
from hw.mac_array import MacArray, MacArraySpec

from .packing import pack_lanes, unpack_lanes
from .runner import Build, build, run_test

__all__ = ["GemmRun", "build_mac_array", "simulate_gemm"]

TOP = "mac_array"
_MODES = ("bulk", "per_cycle")


@dataclass(frozen=True)
class GemmRun:
    """One simulated GEMM: the RTL result, golden's, and the timing figures."""

    c: np.ndarray
    expected: np.ndarray
    cycles: int
    expected_cycles: int
    run_wall_s: float
    build: Build
    waves: Path | None = None

    @property
    def bit_exact(self) -> bool:
        return bool(np.array_equal(self.c, self.expected))

    @property
    def sim_cycles_per_s(self) -> float:
        return self.cycles / self.run_wall_s if self.run_wall_s > 0 else float("inf")


def build_mac_array(spec: MacArraySpec, waves: bool = False) -> Build:
    """Emit and build (or fetch from the cache) the array for ``spec``."""
    return build(to_verilog(MacArray(spec), TOP), TOP, waves=waves)


def simulate_gemm(
    spec: MacArraySpec,
    a: np.ndarray,
    b: np.ndarray,
    *,
    mode: str = "bulk",
    seed: int = 0,
    waves: bool = False,
) -> GemmRun:
    """``C = A @ B`` on the array: A is (rows x K), B is (K x cols), 1 <= K <= depth."""
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
    mac = spec.mac
    a = check_range("a", a, mac.a_type)
    b = check_range("b", b, mac.b_type)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(f"operands must be (rows x K) and (K x cols), got {a.shape}, {b.shape}")
    if a.shape[0] != spec.rows or b.shape[1] != spec.cols:
        raise ValueError(
            f"operands {a.shape} x {b.shape} do not fit the {spec.rows}x{spec.cols} array"
        )
    k = a.shape[1]
    if not 1 <= k <= spec.depth:
        raise ValueError(f"K must be in 1..{spec.depth} (the buffer depth), got {k}")
    expected = int_gemm(a, b, mac.a_type, mac.b_type, acc_bits=mac.acc_bits)
    built = build_mac_array(spec, waves=waves)
    params = {
        "a_words": [pack_lanes(a[:, kk], mac.a_type.bits) for kk in range(k)],
        "b_words": [pack_lanes(b[kk, :], mac.b_type.bits) for kk in range(k)],
        "k": k, "rows": spec.rows, "mode": mode,
    }
    result = run_test(built, "sim.benches.mac_array_bench", params, seed=seed, waves=waves)
    out = result.output
    c = np.array([unpack_lanes(int(w), spec.cols, mac.acc_bits) for w in out["c_rows"]],
                 dtype=np.int64)
    return GemmRun(c, expected, int(out["cycles"]), spec.run_cycles(k),
                   float(out["run_wall_s"]), built, result.waves)
