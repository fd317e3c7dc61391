"""``lego map`` and ``lego compare``: whole models mapped onto an accelerator or a GPU; ``lego
e2e``: a tiny model run on the accelerator's RTL against golden and float (:mod:`flows.e2e`);
with ``--out DIR``, its report there (:mod:`flows.e2e_report`).

``lego map MODEL`` prints one line per operator (where it runs, how, what it costs) and the
totals; ``--json FILE`` also writes the schedule and, next to it, the plots (per-operator
utilization and a roofline, PNG and SVG). ``lego compare MODEL --arch A --arch B`` maps the
model on each architecture and prints cycles and energy per operator kind side by side with
the ratios to the first. MODEL is a zoo name (``lego models``) or ``FILE.py:FUNCTION`` (the
function returns a ``torch.nn.Module`` and its example inputs; imported by torch.fx).
"""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["add_parsers", "cmd_compare", "cmd_e2e", "cmd_map"]

_DEFAULT_ARCH = "examples/arch/lego_fused.yaml"


def _option(text: str) -> tuple[str, object]:
    """``--set NAME=VALUE``: VALUE as an int, a float, true/false, else a string."""
    name, eq, value = (s.strip() for s in text.partition("="))
    if not eq or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    for cast in (int, float):
        try:
            return name, cast(value)
        except ValueError:
            pass
    return name, {"true": True, "false": False}.get(value.lower(), value)


def _positive(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return int(text)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="MODEL", help="a zoo model (see 'lego models') or "
                   "FILE.py:FUNCTION returning (torch.nn.Module, example inputs)")
    p.add_argument("--set", dest="options", type=_option, action="append", default=[],
                   metavar="NAME=VALUE", help="a zoo model's option, e.g. phase=prefill, "
                   "context=131072 (repeatable)")
    p.add_argument("--float-as", choices=("int8", "none"), default="int8",
                   help="float contractions and attention on the integer array as int8 codes "
                        "(default) or not at all (then they are reported unmappable)")
    p.add_argument("--grouped", choices=("partials", "int8"), default="partials",
                   help="int4 group codes without a dequantizer: group partials with the "
                        "host's rescale (default, same numerics) or W8A8 (another model)")
    p.add_argument("--objective", choices=("cycles", "energy", "edp"), default="cycles",
                   help="what each operator's choice minimizes: cycles (default; ties: "
                        "energy), energy, or the energy-delay product")
    p.add_argument("--host-lanes", type=_positive, default=16, metavar="N",
                   help="FP32 ops a cycle of the host beside the array (default 16)")


def add_parsers(sub) -> None:
    """Register ``map`` and ``compare`` on the ``lego`` sub-command parsers ``sub``."""
    m = sub.add_parser("map", help="map a whole model onto an accelerator or a GPU: a line per "
                       "operator (target, dataflow, tiles, cycles, utilization, DRAM bytes, "
                       "energy, bound) and the totals")
    _common(m)
    m.add_argument("--target", choices=("accel", "gpu"), default="accel",
                   help="accelerator (default) or GPU roofline")
    m.add_argument("--arch", default=_DEFAULT_ARCH, metavar="ARCH.yaml",
                   help=f"the accelerator (default {_DEFAULT_ARCH})")
    m.add_argument("--gpu", default="RTX4090-laptop", metavar="NAME",
                   help="the GPU of --target gpu: RTX4090-laptop (default), A100, H100")
    m.add_argument("--json", metavar="FILE", help="write the schedule as JSON to FILE and its "
                   "plots next to it (FILE's stem + _utilization / _roofline, .png and .svg)")
    m.add_argument("--lower", metavar="DIR", help="accelerator: write every accelerator step's "
                   "program, operand DRAM image and the reference machine's result to DIR (a "
                   "new folder; small models: the tiny-* twins)")
    m.add_argument("--check", action="store_true", help="gpu: also run every operator once on "
                   "its Triton kernel (the interpreter without a GPU) against its reference; "
                   "exit 1 if one fails (small models)")
    e = sub.add_parser("e2e", help="run a tiny model's torch twin with its linears as W8A8 GEMMs "
                       "on the accelerator (RTL) against golden (bit-exact) and float: a line "
                       "per linear call, then one JSON line")
    e.add_argument("model", metavar="MODEL", help="a tiny zoo model with a torch twin, e.g. "
                   "tiny-llama3-8b-duo")
    e.add_argument("--arch", default=_DEFAULT_ARCH, metavar="ARCH.yaml",
                   help=f"the accelerator (default {_DEFAULT_ARCH})")
    e.add_argument("--engine", choices=("fast", "ref"), default="fast",
                   help="fast: the RTL in Verilator and the reference machine (default); ref: "
                        "the reference machine only")
    e.add_argument("--seed", type=int, default=0, help="weights and inputs seed (default 0)")
    e.add_argument("--out", metavar="DIR", help="also write the report to DIR (created if "
                   "missing): MODEL_e2e.md, a self-contained MODEL_e2e.html and the mapper's "
                   "plots of the model (with --steps: MODEL_generate.md and .html)")
    e.add_argument("--no-gpu", action="store_true", help="skip the GPU run (the chain's leaves "
                   "on the sw Triton kernels; the interpreter without a GPU)")
    e.add_argument("--steps", type=int, metavar="N", help="generate: a DuoAttention decoder "
                   "twin prefills a prompt in chunks, then decodes N tokens with its KV cache "
                   "kept in the accelerator's memories, checked against golden's caches")
    e.add_argument("--prompt", type=int, default=24, metavar="P",
                   help="with --steps: prompt tokens (default 24; more than sink + recent)")
    e.add_argument("--chunk", type=int, default=8, metavar="C",
                   help="with --steps: prefill chunk (default 8)")
    e.add_argument("--retrieval-heads", type=int, metavar="R", help="with --steps: retrieval "
                   "KV heads a layer (default: half of them)")
    c = sub.add_parser("compare", help="map a model on several accelerators; cycles and energy "
                       "per operator kind side by side, with ratios to the first")
    _common(c)
    c.add_argument("--arch", action="append", required=True, metavar="ARCH.yaml",
                   help="an architecture (give two or more; ratios are to the first)")


def _graph(args):
    """The model graph of ``args.model`` (zoo name with ``--set`` options, or an fx import)."""
    options = dict(args.options)
    if ":" in args.model and args.model.split(":", 1)[0].endswith(".py"):
        if options:
            raise ValueError("--set applies to zoo models, not to FILE.py:FUNCTION")
        from mapping.fx_import import import_module, load_user_model

        module, inputs = load_user_model(args.model)
        return import_module(module, inputs, name=Path(args.model.split(":")[0]).stem)
    from mapping.zoo import model

    return model(args.model, **options)


def _policy(args):
    from mapping.host_cost import Host
    from mapping.policy import Policy

    return (Policy(None if args.float_as == "none" else args.float_as, args.grouped),
            Host(lanes=args.host_lanes))


def _map(graph, args, arch_path: str):
    from hw.front.arch import load_arch
    from mapping.mapper import map_model

    policy, host = _policy(args)
    return map_model(graph, arch=load_arch(arch_path), policy=policy, host=host,
                     objective=args.objective)


def cmd_map(args) -> int:
    """``lego map``: the table (and the JSON and plots with ``--json``)."""
    from mapping.report import format_schedule

    if args.json:
        out = Path(args.json)
        if not out.parent.is_dir():
            raise ValueError(f"--json {args.json!r}: folder {str(out.parent)!r} does not exist")
    if args.lower and args.target != "accel":
        raise ValueError("--lower writes accelerator programs: it needs --target accel")
    if args.check and args.target != "gpu":
        raise ValueError("--check runs the GPU kernels: it needs --target gpu")
    if args.lower and Path(args.lower).exists():
        raise ValueError(f"--lower {args.lower!r} exists; give a new folder")
    graph = _graph(args)
    if args.target == "gpu":
        from mapping.mapper import map_model

        schedule = map_model(graph, device=args.gpu)
    else:
        schedule = _map(graph, args, args.arch)
    print(format_schedule(schedule))
    failed = _check(graph, args) if args.check else 0
    if args.lower:
        _lower(graph, args)
    if args.json:
        from mapping.plots import plot_schedule

        data = schedule.to_dict()
        written = plot_schedule(data, out.with_suffix(""))
        schedule.write_json(out)
        print(f"wrote {out} and {', '.join(str(p) for p in written)}")
    return 1 if failed else 0


def _check(graph, args) -> int:
    """Run the graph's operators on the GPU kernels; print a line per failure and a summary;
    the number that failed."""
    from mapping.gpu_run import run_on_gpu_kernels

    runs = run_on_gpu_kernels(graph, device=args.gpu)
    bad = [r for r in runs if not r.passed]
    for r in bad:
        print(f"FAILED {r.op} ({r.kernel}): {r.reason}")
    triton = sum(r.ran == "triton" for r in runs)
    print(f"check: {len(runs) - len(bad)} of {len(runs)} operators passed ({triton} on Triton "
          f"kernels, {len(runs) - triton} in torch)")
    return len(bad)


def _lower(graph, args) -> None:
    from hw.front.arch import load_arch
    from mapping.lower import lower_model, save_lowered

    policy, _ = _policy(args)
    steps = lower_model(graph, load_arch(args.arch), policy=policy)  # the cycles objective
    folder = save_lowered(steps, args.lower)
    print(f"lowered {len(steps)} accelerator programs to {folder}")


def cmd_compare(args) -> int:
    """``lego compare``: per-kind cycles and energy on every ``--arch``, ratios to the first."""
    from mapping.report import format_comparison

    if len(args.arch) < 2:
        raise ValueError(f"compare needs two or more --arch, got {len(args.arch)}")
    graph = _graph(args)
    schedules = [_map(graph, args, a) for a in args.arch]
    print(format_comparison(schedules))
    return 0


def _generate(args, arch) -> int:
    """``lego e2e --steps N``: the generation's tables and JSON line."""
    import json

    from .e2e_blocks import block_line
    from .e2e_generate import caches_table, run_generate
    from .e2e_host import host_kinds_table, host_summary
    from .e2e_tables import gpu_records_table, records_table

    run = run_generate(args.model, arch, steps=args.steps, prompt=args.prompt,
                       chunk=args.chunk, engine=args.engine, seed=args.seed,
                       retrieval_heads=args.retrieval_heads, gpu=not args.no_gpu)
    print(records_table(run))
    if run.gpu_ops:
        print(gpu_records_table(run))
    print(caches_table(run))
    print(block_line(run.blocks))
    if run.host_ops:
        print(host_kinds_table(run))
        print(host_summary(run))
    print(f"tokens (float): {' '.join(map(str, run.tokens_float))}")
    print(f"tokens (accel): {' '.join(map(str, run.tokens_accel))}")
    print(f"in torch (not on the accelerator yet): {', '.join(run.torch_ops)}")
    if args.out:
        from .e2e_report import write_generate_report

        written = write_generate_report(run, args.out)
        print(f"wrote {', '.join(str(p) for p in written)}")
    print(json.dumps(run.report()))
    return 0 if run.passed else 1


def cmd_e2e(args) -> int:
    """``lego e2e``: the linear calls' table, the host's operators by kind and its summary
    line, and the JSON line (with ``--out``, the report's paths before it); exit 1 unless it
    passed."""
    import json

    from hw.front.arch import load_arch

    from .e2e_blocks import block_line
    from .e2e_host import host_kinds_table, host_summary
    from .e2e_report import e2e_with_report
    from .e2e_tables import gpu_records_table, records_table

    if args.steps is None:
        given = [f"--{n}" for n in ("prompt", "chunk") if getattr(args, n) != {
            "prompt": 24, "chunk": 8}[n]]
        if given or args.retrieval_heads is not None:
            raise ValueError(f"{', '.join(given) or '--retrieval-heads'} needs --steps")
    else:
        return _generate(args, load_arch(args.arch))

    run, _, written = e2e_with_report(args.model, load_arch(args.arch), engine=args.engine,
                                      seed=args.seed, out_dir=args.out, gpu=not args.no_gpu)
    print(records_table(run))
    if run.gpu_ops:
        print(gpu_records_table(run))
    if run.blocks:
        print(block_line(run.blocks))
    print(f"in torch (not on the accelerator yet): {', '.join(run.torch_ops)}")
    if run.host_ops:
        print(host_kinds_table(run))
        print(host_summary(run))
    if written:
        print(f"wrote {', '.join(str(p) for p in written)}")
    print(json.dumps(run.report()))
    return 0 if run.passed else 1
