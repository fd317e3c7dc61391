"""Accelerator runs in cocotb (Verilator): the behaviour checker next to :mod:`sim.accel_fast`.

:class:`DramModel` is the DRAM model of :mod:`sim.accel_fast`'s docstring in Python, cycle
for cycle; the bench :mod:`sim.benches.accel_bench` drives the accelerator with it under the
same cycle protocol, so :func:`run_accel_cocotb` and :func:`sim.accel_fast.run_accel_fast`
give the same ``cycles`` and the same final DRAM. Python runs every cycle here (~10^4
cycles/s): use it for small programs, the fast engine for long ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .accel_fast import EXTRA_VERILATOR_FLAGS, AccelRun, accel_ports, check_run_args
from .dram_model import DramModel
from .errors import SimulationError
from .runner import build, run_test

__all__ = ["BENCH", "DramModel", "run_accel_cocotb"]

#: The cocotb test module that drives an accelerator.
BENCH = "sim.benches.accel_bench"


def run_accel_cocotb(
    verilog: str,
    top: str,
    words: Sequence[int],
    dram: bytes,
    *,
    latency: int,
    max_cycles: int,
    cache_root: Path | None = None,
    timeout_s: float | None = None,
) -> AccelRun:
    """Run program ``words`` on accelerator ``top`` of ``verilog`` in cocotb (cached build).

    Same arguments, checks and results as :func:`sim.accel_fast.run_accel_fast`
    (``wall_s``: the bench's wall time of the counted cycles). Raises :class:`BuildError`
    when the top lacks the accelerator ports or does not build, :class:`SimulationError`
    when the run fails (more than ``max_cycles`` cycles, a request outside the DRAM model:
    the bench's message and log tail are in the error).
    """
    words = check_run_args(words, dram, latency, max_cycles)
    accel_ports(verilog, top)
    built = build(verilog, top, extra_flags=EXTRA_VERILATOR_FLAGS, cache_root=cache_root)
    run = run_test(built, BENCH, {"words": [str(w) for w in words], "dram": bytes(dram).hex(),
                                  "latency": latency, "max_cycles": max_cycles},
                   timeout_s=timeout_s)
    out = run.output
    if "error" in out:
        raise SimulationError(f"{top}: {out['error']}")
    cycles, wall = int(out["cycles"]), float(out["run_wall_s"])
    return AccelRun(cycles, bytes.fromhex(out["dram"]), wall, cycles / wall if wall > 0 else 0.0)
