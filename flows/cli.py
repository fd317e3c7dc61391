"""The ``lego`` command line.

Every failure the user can cause (bad options, unwritable paths, a missing toolchain piece, a
design that does not build) prints one ``lego: error: ...`` line and exits non-zero; only
genuine bugs show a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

from sim.errors import SimError

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not argparse's usage dump
        self.exit(2, f"lego: error: {message} (see 'lego --help')\n")


def _version() -> str:
    try:
        return version("lego-codesign")
    except PackageNotFoundError:  # pragma: no cover - running from a plain checkout
        return "unknown"


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="lego", description="LEGO co-design flows: emit RTL, simulate, check.")
    p.add_argument("--version", action="version", version=f"lego {_version()}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    e = sub.add_parser("emit", help="write the default design's Verilog")
    e.add_argument("--out", required=True, metavar="DIR", help="output directory")

    s = sub.add_parser("sim", help="build and run the default test in Verilator; print JSON")
    _sim_options(s)

    d = sub.add_parser("demo", help="emit, simulate and report on the default design")
    d.add_argument("--out", default="out", metavar="DIR", help="output directory (default: out)")
    _sim_options(d)
    return p


def _sim_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=int, default=0, help="operand seed (default 0)")
    p.add_argument("--mode", choices=("bulk", "per_cycle"), default="bulk",
                   help="bulk: one wait for done; per_cycle: Python on every clock edge")
    p.add_argument("--waves", action="store_true", help="record a VCD of the run")


def _sim_report(run) -> dict:
    report = {
        "bit_exact": run.bit_exact,
        "cycles": run.cycles,
        "expected_cycles": run.expected_cycles,
        "sim_cycles_per_s": round(run.sim_cycles_per_s, 1),
        "build_s": round(run.build.seconds, 2),
        "build_cached": run.build.cached,
    }
    if run.waves is not None:
        report["waves"] = str(run.waves)
    return report


def _cmd_emit(args) -> int:
    from .default_design import emit_default

    emitted = emit_default(args.out)
    print(f"wrote {emitted.verilog} ({emitted.lines} lines)")
    return 0


def _cmd_sim(args) -> int:
    from .default_design import simulate_default

    run = simulate_default(seed=args.seed, mode=args.mode, waves=args.waves)
    print(json.dumps(_sim_report(run)))
    return 0 if run.bit_exact and run.cycles == run.expected_cycles else 1


def _cmd_demo(args) -> int:
    from .default_design import DEFAULT_K, DEFAULT_SPEC, emit_default, simulate_default

    t0 = time.perf_counter()
    emitted = emit_default(args.out)
    t_emit = time.perf_counter() - t0
    run = simulate_default(seed=args.seed, mode=args.mode, waves=args.waves)
    ok = run.bit_exact and run.cycles == run.expected_cycles
    spec = DEFAULT_SPEC
    print(f"design   {spec.rows}x{spec.cols} {spec.mac.a_type}x{spec.mac.b_type} MAC array, "
          f"int{spec.mac.acc_bits} accumulators (output-stationary systolic)")
    print(f"emit     {emitted.verilog} ({emitted.lines} lines, {t_emit:.2f} s)")
    print(f"build    Verilator {run.build.seconds:.1f} s"
          f"{' (cached)' if run.build.cached else ''}")
    print(f"sim      GEMM {spec.rows}x{DEFAULT_K}x{spec.cols}, seed {args.seed}: "
          f"{run.cycles} cycles (expected {run.expected_cycles}), "
          f"{run.sim_cycles_per_s:,.0f} simulated cycles/s")
    print(f"check    RTL vs golden: {'bit-exact' if run.bit_exact else 'MISMATCH'}")
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


_COMMANDS = {"emit": _cmd_emit, "sim": _cmd_sim, "demo": _cmd_demo}


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return _COMMANDS[args.command](args)
    except (ValueError, OSError, SimError) as exc:
        first, *rest = str(exc).splitlines() or [type(exc).__name__]
        print(f"lego: error: {first}", file=sys.stderr)
        for line in rest:
            print(f"  {line}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("lego: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
