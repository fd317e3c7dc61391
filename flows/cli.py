"""The ``lego`` command line.

Every failure the user can cause (bad options, unwritable paths, a missing toolchain piece, a
design that does not build) prints one ``lego: error: ...`` line and exits non-zero; only
genuine bugs show a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

from sim.errors import SimError

from . import sweep_cli
from .map_cli import add_parsers, cmd_compare, cmd_e2e, cmd_map

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not argparse's usage dump
        self.exit(2, f"lego: error: {message} (see 'lego --help')\n")


def _version() -> str:
    try:
        return version("lego-codesign")
    except PackageNotFoundError:  # pragma: no cover - running from a plain checkout
        return "unknown"


def _dims(text: str) -> dict[str, int]:
    """``"i=7,j=5"`` -> ``{"i": 7, "j": 5}``: each dim once, each extent in 1..MAX_EXTENT."""
    from hw.front.spec import MAX_EXTENT

    out: dict[str, int] = {}
    for part in text.split(","):
        name, eq, value = (s.strip() for s in part.partition("="))
        if not eq or not name or not (value.isascii() and value.isdigit()):
            raise argparse.ArgumentTypeError(f"expected NAME=INT[,NAME=INT...], got {text!r}")
        if name in out:
            raise argparse.ArgumentTypeError(f"dim {name!r} is given twice in {text!r}")
        if not 1 <= int(value) <= MAX_EXTENT:
            raise argparse.ArgumentTypeError(
                f"{name}={value}: an extent must be an integer in 1..{MAX_EXTENT} (2**31 - 1)")
        out[name] = int(value)
    return out


#: seeds the engines take (cocotb's is 32 bits).
MAX_SEED = 2**32 - 1


def _seed(text: str) -> int:
    """``--seed``: an integer in 0..MAX_SEED."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"must be an integer in 0..{MAX_SEED}, got {text!r}")
    return value


def _extents(count: int):
    """An argparse type: ``count`` positive integers separated by commas."""
    def parse(text: str) -> tuple[int, ...]:
        parts = text.split(",")
        if len(parts) != count or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
            raise argparse.ArgumentTypeError(f"expected {count} positive integers separated "
                                             f"by commas, got {text!r}")
        return tuple(int(p) for p in parts)
    return parse


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected integers separated by commas, got {text!r}") from None


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="lego", description="LEGO co-design flows: generate spatial arrays from a "
                "tensor operation and a dataflow, emit Verilog, simulate against golden.")
    p.add_argument("--version", action="version", version=f"lego {_version()}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    e = sub.add_parser("emit", help="write a design's Verilog and JSON report")
    _spec_options(e)
    e.add_argument("--out", required=True, metavar="DIR", help="output directory")

    s = sub.add_parser("sim", help="simulate a design against golden; print one JSON object")
    _spec_options(s)
    _sim_options(s)
    s.add_argument("--dataflow", metavar="NAME",
                   help="for a fused spec (several dataflows): which one runs (default: first)")

    g = sub.add_parser("gpu-ref", help="run a Triton kernel against golden; roofline at paper "
                       "scale")
    g.add_argument("--workload", default="svdquant",
                   choices=("svdquant", "linear-attention", "duo-attention", "coat"),
                   help="which kernel (default: svdquant)")
    g.add_argument("--shape", type=_ints, metavar="N,N,..",
                   help="problem shape (svdquant: tokens,N,K; linear-attention: "
                        "batch,heads,tokens,head_dim; duo-attention: "
                        "batch,q_heads,kv_heads,tokens,head_dim; coat: elements)")
    g.add_argument("--seed", type=_seed, default=0, help="input seed (default 0)")

    a = sub.add_parser("arch", help="check an architecture spec and say what it is; with "
                       "'emit', write its accelerator's Verilog",
                       usage="lego arch [emit] ARCH.yaml [--out DIR]")
    a.add_argument("words", nargs="+", metavar="[emit] ARCH.yaml",
                   help="architecture spec (examples/arch/), after 'emit' to write its "
                        "accelerator (DIR/<name>_accel.v)")
    a.add_argument("--out", default="out", metavar="DIR",
                   help="output directory of 'emit' (default: out)")

    r = sub.add_parser("run", help="run a GEMM, a convolution or a workload on an "
                       "architecture against golden; print one JSON object")
    r.add_argument("arch", metavar="ARCH.yaml", help="architecture spec (examples/arch/)")
    layer = r.add_mutually_exclusive_group(required=True)
    layer.add_argument("--gemm", type=_extents(3), metavar="M,N,K", help="C = A B")
    layer.add_argument("--conv", type=_extents(6), metavar="C,H,W,K,R,S",
                       help="valid stride-1 convolution: C channels of H x W, K R x S kernels")
    layer.add_argument("--workload", choices=("svdquant", "linear-attention", "duo-attention"),
                       help="a whole layer or head through the architecture's units "
                            "(reference machine only for now): svdquant --shape M,K,N,R "
                            "(default 16,256,64,32: W4A4 + a rank-R branch); linear-attention "
                            "--shape N,D,DV (default 256,32,32); duo-attention --shape G,T,D "
                            "(default 4,96,64: a KV head, G query heads, T tokens)")
    r.add_argument("--shape", type=_ints, metavar="N,..", help="the workload's shape")
    r.add_argument("--window", type=_ints, metavar="SINK,RECENT",
                   help="duo-attention: a streaming head (default: a retrieval head)")
    r.add_argument("--chunk", type=int, default=32, metavar="C",
                   help="duo-attention: prefill chunk (default 32)")
    r.add_argument("--decode", type=int, default=4, metavar="N",
                   help="duo-attention: the last N tokens as decode steps (default 4)")
    r.add_argument("--dataflow", metavar="NAME",
                   help="the architecture's dataflow to use (default: lowest roofline bound)")
    r.add_argument("--transpose-a", action="store_true", help="A stored K x M in DRAM")
    r.add_argument("--transpose-b", action="store_true", help="B stored N x K in DRAM")
    r.add_argument("--engine", choices=("fast", "cocotb", "ref"), default=None,
                   help="fast: the accelerator's RTL in Verilator's C++ harness (default for "
                        "layers; the first run of an architecture builds it, about a minute); "
                        "cocotb: the RTL in cocotb (small layers); ref: the instruction set's "
                        "reference machine only (default for workloads; the RTL engines run "
                        "the workloads whose commands the RTL executes: linear-attention)")
    r.add_argument("--seed", type=_seed, default=0, help="operand seed (default 0)")

    m = sub.add_parser("models", help="list the model zoo: one model per line with its "
                       "parameters, MACs of one run (a denoising step, a decode step or a "
                       "prefill chunk) and what it is")
    m.add_argument("--json", action="store_true",
                   help="one JSON object per model instead of the table")

    add_parsers(sub)
    sweep_cli.add_parsers(sub)

    d = sub.add_parser("demo", help="the whole flow on the defaults: emit and simulate the "
                       "default design, a GPU kernel vs golden, a tiny model mapped and run end "
                       "to end on an accelerator, its report written to --out")
    d.add_argument("--out", default="out", metavar="DIR", help="output directory (default: out)")
    _sim_options(d)
    d.add_argument("--e2e-engine", choices=("ref", "fast"), default="ref",
                   help="the end-to-end run's engine: ref, the reference machine (default), or "
                        "fast, the accelerator's RTL in Verilator (its first build: minutes)")
    return p


def _spec_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", nargs="?", metavar="SPEC.yaml",
                   help="design spec (default: the built-in 4x4 int8 output-stationary GEMM)")
    p.add_argument("--dims", type=_dims, metavar="i=..,j=..",
                   help="override problem extents of the spec")
    p.add_argument("--stage-budget", type=_budget, metavar="UNITS",
                   help="emit the datapath from the back end's graph, pipelined by LP so that "
                        "no stage is slower than UNITS (a multiplier is 1.0, an adder 0.5)")
    p.add_argument("--max-fanout", type=int, metavar="N",
                   help="back end: broadcast rewiring, no net drives more than N inputs")


def _backend(args):
    """The back-end options of ``args`` (None: the direct generator)."""
    if args.stage_budget is None and args.max_fanout is None:
        return None
    from hw.ir.backend import BackendOptions

    return BackendOptions(stage_budget=args.stage_budget, max_fanout=args.max_fanout)


def _budget(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return value


def _sim_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=_seed, default=0, help="operand seed (default 0)")
    p.add_argument("--engine", choices=("cocotb", "fast", "pysim"), default="cocotb",
                   help="cocotb + Verilator (default), the fast C++ Verilator harness, or "
                        "Amaranth's simulator")
    p.add_argument("--waves", action="store_true", help="record a VCD (cocotb engine)")


def _sim_report(run) -> dict:
    report = {
        "bit_exact": run.bit_exact,
        "cycles": run.cycles,
        "expected_cycles": run.expected_cycles,
        "sim_cycles_per_s": round(run.sim_cycles_per_s, 1) if run.run_wall_s else None,
        "build_s": round(run.build_s, 2),
        "build_cached": run.build_cached,
    }
    if run.waves is not None:
        report["waves"] = str(run.waves)
    return report


def _ok(run) -> bool:
    return run.bit_exact and run.cycles == run.expected_cycles


def _cmd_emit(args) -> int:
    from .default_design import emit, resolve_spec

    emitted = emit(resolve_spec(args.spec, args.dims), args.out, backend=_backend(args))
    print(f"wrote {emitted.verilog} ({emitted.lines} lines) and {emitted.report}")
    return 0


def _cmd_sim(args) -> int:
    from hw.cost import measured_utilization

    from .default_design import dataflow_index, resolve_spec, simulate

    specs = resolve_spec(args.spec, args.dims)
    run = simulate(specs, seed=args.seed, engine=args.engine, waves=args.waves,
                   dataflow=args.dataflow, backend=_backend(args))
    ran = specs[dataflow_index(specs, args.dataflow)]
    # the mode that ran: its op's MACs / (array FUs x measured cycles)
    util = round(measured_utilization(ran, run.cycles), 4) if run.cycles > 0 else None
    print(json.dumps({"engine": args.engine, "dataflow": ran.dataflow.name,
                      **_sim_report(run), "utilization": util}))
    return 0 if _ok(run) else 1


def _cmd_demo(args) -> int:
    from .demo import cmd_demo

    return cmd_demo(args)


def _cmd_gpu_ref(args) -> int:
    from .gpu_ref import format_report, run_gpu_ref

    print(format_report(run_gpu_ref(args.workload, args.shape, args.seed)))
    return 0


def _cmd_arch(args) -> int:
    from hw.front.arch import load_arch

    from .accel import arch_summary

    words = args.words
    if len(words) == 1 and words[0] != "emit":
        args.arch = words[0]
        print(arch_summary(load_arch(args.arch)))
        return 0
    if len(words) != 2 or words[0] != "emit":
        raise ValueError(f"expected 'lego arch ARCH.yaml' or 'lego arch emit ARCH.yaml', got "
                         f"{' '.join(words)!r}")
    from .accel_engines import emit_accelerator

    args.arch = words[1]
    print(json.dumps(emit_accelerator(load_arch(args.arch), args.out)))
    return 0


def _cmd_run(args) -> int:
    from hw.front.arch import load_arch

    from .accel import run_conv, run_gemm

    arch = load_arch(args.arch)
    if args.workload:
        return _run_workload(arch, args)
    if args.shape or args.window:
        raise ValueError("--shape and --window go with --workload")
    args.engine = args.engine or "fast"
    if args.gemm:
        run = run_gemm(arch, *args.gemm, dataflow=args.dataflow, a_transposed=args.transpose_a,
                       b_transposed=args.transpose_b, seed=args.seed, engine=args.engine)
    else:
        if args.transpose_a or args.transpose_b:
            raise ValueError("--transpose-a/--transpose-b go with --gemm")
        run = run_conv(arch, *args.conv, dataflow=args.dataflow, seed=args.seed,
                       engine=args.engine)
    print(json.dumps(run.report()))
    return 0 if run.bit_exact else 1


def _run_workload(arch, args) -> int:
    from .workloads import run_workload

    if args.dataflow or args.transpose_a or args.transpose_b:
        raise ValueError("--dataflow and --transpose-a/-b go with --gemm or --conv")
    run = run_workload(arch, args.workload, args.shape, seed=args.seed, window=args.window,
                       chunk=args.chunk, decode=args.decode, engine=args.engine or "ref")
    print(json.dumps(run.report()))
    return 0 if run.bit_exact else 1


def _cmd_models(args) -> int:
    from mapping.report import si
    from mapping.zoo import describe, model

    for name, text in describe():
        t = model(name).totals()
        if args.json:
            print(json.dumps({"model": name, "description": text, "macs": t.macs,
                              "weight_params": t.weight_params, "weight_bytes": t.weight_bytes,
                              "kv_cache_bytes": t.kv_cache_bytes}))
        else:
            print(f"{name:<20} {si(t.weight_params):>7} params {si(t.macs):>7} MACs  {text}")
    return 0


_COMMANDS = {"emit": _cmd_emit, "sim": _cmd_sim, "demo": _cmd_demo, "gpu-ref": _cmd_gpu_ref,
             "arch": _cmd_arch, "run": _cmd_run, "models": _cmd_models,
             "map": cmd_map, "compare": cmd_compare, "e2e": cmd_e2e,
             "sweep": sweep_cli.cmd_sweep, "sweep-report": sweep_cli.cmd_sweep_report}


def _in_spec_file(exc: Exception, path: str | None) -> Exception:
    """A spec error (the spec's own checks or planning's: map, collisions, array size,
    padding, fusion) names the spec file it came from, once."""
    from hw.front.spec import SpecError, in_file

    return in_file(exc, path) if path and isinstance(exc, SpecError) else exc


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return _COMMANDS[args.command](args)
    except BrokenPipeError:             # the reader went away (``lego models | head``)
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - no flush error at exit
        return 141
    except (ValueError, OSError, SimError) as exc:
        exc = _in_spec_file(exc, getattr(args, "spec", None) or getattr(args, "arch", None))
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
