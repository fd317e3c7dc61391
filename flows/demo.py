"""``lego demo``: the whole flow on the defaults, a line per step, then PASS or FAIL.

1. **design / emit / build / sim / check**: the default design (:mod:`flows.default_design`)
   emitted to ``--out``, simulated (``--engine``) and checked against golden.
2. **gpu-ref**: the linear-attention Triton kernel on a small shape (:data:`GPU_SHAPE`,
   quick in Triton's interpreter without a GPU) against golden (:func:`flows.gpu_ref.run_gpu_ref`).
3. **map / e2e / report**: :data:`E2E_MODEL` mapped on :data:`E2E_ARCH` and run end to end
   (``--e2e-engine``: ``ref``, the reference machine, by default; ``fast`` builds the
   accelerator's RTL in Verilator, minutes on a fresh machine), its report written to
   ``--out`` (:mod:`flows.e2e_report`).

Every step must pass: the RTL bit-exact with the expected cycles, the kernel's relative error
under :data:`GPU_TOLERANCE`, the end-to-end run passing (:attr:`flows.e2e.E2ERun.passed`).

Layer: flows.
"""

from __future__ import annotations

import time

__all__ = ["E2E_ARCH", "E2E_MODEL", "GPU_SHAPE", "GPU_TOLERANCE", "GPU_WORKLOAD", "cmd_demo"]

E2E_MODEL = "tiny-llama3-8b-duo"
E2E_ARCH = "examples/arch/lego_fused.yaml"
GPU_WORKLOAD = "linear-attention"
GPU_SHAPE = (1, 1, 64, 32)
"""batch, heads, tokens, head_dim: a fraction of a second in Triton's interpreter."""
GPU_TOLERANCE = 1e-4
"""Largest relative error of the kernel against golden (IEEE float32 dots)."""


def _design(args) -> bool:
    """Emit, simulate and check the default design (the lines of steps 1); whether it passed."""
    from .default_design import default_spec, emit, simulate

    spec = default_spec()
    t0 = time.perf_counter()
    emitted = emit([spec], args.out)
    t_emit = time.perf_counter() - t0
    run = simulate([spec], seed=args.seed, engine=args.engine, waves=args.waves)
    f = emitted.figures
    dims = "x".join(str(v) for v in f["problem"].values())
    print(f"design   {spec.name}: {'x'.join(map(str, spec.array))} array, dataflow "
          f"{spec.dataflow.name}, reuse " + ", ".join(
              f"{n}: {'/'.join(t['reuse'])}" for n, t in f["tensors"].items()))
    print(f"emit     {emitted.verilog} ({emitted.lines} lines, {t_emit:.2f} s), "
          f"{f['registers']['total_bits']} register bits, {f['banks']['count']} banks "
          f"(netlist cross-checked)")
    print(f"build    {args.engine}: {run.build_s:.1f} s{' (cached)' if run.build_cached else ''}")
    rate = f", {run.sim_cycles_per_s:,.0f} simulated cycles/s" if run.run_wall_s else ""
    print(f"sim      {dims} problem, seed {args.seed}: {run.cycles} cycles "
          f"(expected {run.expected_cycles}, utilization {f['utilization']:.1%}){rate}")
    print(f"check    RTL vs golden: {'bit-exact' if run.bit_exact else 'MISMATCH'}")
    return run.bit_exact and run.cycles == run.expected_cycles


def _gpu(args) -> bool:
    """The GPU reference step's line; whether the kernel matched golden."""
    from .gpu_ref import run_gpu_ref

    t0 = time.perf_counter()
    r = run_gpu_ref(GPU_WORKLOAD, GPU_SHAPE, args.seed)
    ok = r["max_rel_err"] < GPU_TOLERANCE
    print(f"gpu-ref  {GPU_WORKLOAD} {'x'.join(map(str, GPU_SHAPE))} Triton kernel on "
          f"{r['device']}: max rel err {r['max_rel_err']:.2g} vs golden "
          f"({'ok' if ok else 'OVER'} {GPU_TOLERANCE:g}), {time.perf_counter() - t0:.1f} s")
    return ok


def _e2e(args) -> bool:
    """Map, run end to end and report (the lines of step 3); whether the run passed."""
    from hw.front.arch import load_arch
    from mapping.report import si

    from .e2e_report import e2e_with_report

    t0 = time.perf_counter()
    run, schedule, written = e2e_with_report(E2E_MODEL, load_arch(E2E_ARCH),
                                             engine=args.e2e_engine, seed=args.seed,
                                             out_dir=args.out)
    assert schedule is not None                       # mapped: out_dir was given
    t = schedule.totals
    print(f"map      {E2E_MODEL} on {schedule.arch}: {len(schedule.entries)} operators, "
          f"{si(t['cycles'])} cycles, {si(t['macs'])} MACs, DRAM {si(t['dram_bytes'], 'B')}")
    print(f"e2e      {run.engine} engine: {len(run.ops)} accelerator calls, bit-exact vs golden "
          f"{'yes' if run.bit_exact else 'NO'}, cycles match {run.cycles_match}, errors within "
          f"bounds {run.within_bounds}, output rel err vs float {run.rel_err_accel:.2g} "
          f"({time.perf_counter() - t0:.1f} s)")
    print(f"report   {written[0]}, {written[1]} (+{len(written) - 2} plots)")
    return run.passed


def cmd_demo(args) -> int:
    """``lego demo`` (module docstring): exit 0 when every step passed, else 1."""
    t0 = time.perf_counter()
    ok = _design(args)
    ok = _gpu(args) and ok
    ok = _e2e(args) and ok
    print(f"time     {time.perf_counter() - t0:.1f} s in all")
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1
