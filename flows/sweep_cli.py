"""``lego sweep`` and ``lego sweep-report``: design-space sweeps from the command line.

``lego sweep SWEEP.yaml --store PATH [--backend pool|ray] [--workers N] [--address ADDR]`` runs
the sweep (:func:`flows.sweep_run.run_sweep`) into the SQLite store at PATH, progress on stderr;
its last stdout line is the JSON summary ``{"points", "computed", "reused", "failed", "stale",
"dropped", "store"}`` (:func:`flows.sweep_run.run_sweep`). ``--measure cost,area,rtl`` replaces
the file's ``measure`` (other points: the store keeps both). A point that fails is recorded with
its message and counted in ``failed``; the command still exits 0 (the failures are data). Errors
of the sweep file, the store or the options print one ``lego: error:`` line and exit 1 before
any point runs.

``lego sweep-report PATH --out DIR [--csv FILE] [--all]`` reads the store's rows of the sweep as
last run (``--all``: every stored row; :func:`flows.sweep_store.read_rows`) and writes the plots
and the HTML report (``flows.sweep_report.write_report(rows, out_dir)``) and the CSV
(``flows.sweep_csv.write_csv(rows, path)``); its last stdout line is JSON too.

Layer: flows.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

__all__ = ["add_parsers", "cmd_sweep", "cmd_sweep_report"]


def _positive(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return int(text)


def add_parsers(sub) -> None:
    """Register ``sweep`` and ``sweep-report`` on the ``lego`` sub-command parsers ``sub``."""
    s = sub.add_parser("sweep", help="run a design-space sweep (models x architecture axes) "
                       "into a result store; reruns compute only what is missing; the last "
                       "line is a JSON summary")
    s.add_argument("sweep", metavar="SWEEP.yaml", help="the sweep file (examples/sweeps/)")
    s.add_argument("--store", required=True, metavar="PATH",
                   help="the SQLite result store (created if missing; one per sweep)")
    s.add_argument("--backend", choices=("pool", "ray"), default="pool",
                   help="pool: local processes (default); ray: Ray tasks, on a local Ray "
                        "instance started for the run or on --address")
    s.add_argument("--workers", type=_positive, metavar="N",
                   help="processes (pool) or CPUs of the local Ray instance (default: the "
                        "CPU count)")
    s.add_argument("--address", metavar="ADDR",
                   help="with --backend ray: an existing cluster ('auto', 'ray://HOST:PORT')")
    s.add_argument("--measure", metavar="M,..", help="replace the file's measures: cost "
                   "(always), area (Yosys, cached per architecture family), rtl (sampled "
                   "operators on the generated RTL)")
    r = sub.add_parser("sweep-report", help="plots, Pareto fronts and an HTML report of a "
                       "sweep's store (and a CSV of its points)")
    r.add_argument("store", metavar="PATH", help="the sweep's result store")
    r.add_argument("--out", required=True, metavar="DIR", help="report folder (created)")
    r.add_argument("--csv", metavar="FILE", help="also write one row per point, sorted, "
                   "without timing columns (diffable between stores)")
    r.add_argument("--all", action="store_true", help="every stored row, also of points the "
                   "sweep no longer has (default: the sweep as last run)")


def cmd_sweep(args) -> int:
    """``lego sweep``: run the sweep, print the summary as the last line."""
    from .sweep_run import run_sweep
    from .sweep_spec import load_sweep

    spec = load_sweep(args.sweep)
    if args.measure is not None:
        from dataclasses import replace

        spec = replace(spec, measure=tuple(m.strip() for m in args.measure.split(",")))
        spec.points  # noqa: B018 - the new measures' points, checked before any work
    summary = run_sweep(spec, args.store, backend=args.backend, workers=args.workers,
                        address=args.address, progress=sys.stderr)
    if summary["failed"]:
        print(f"lego sweep: {summary['failed']} point(s) failed; their messages are in the "
              f"store (lego sweep-report)", file=sys.stderr)
    print(json.dumps(summary))
    return 0


def cmd_sweep_report(args) -> int:
    """``lego sweep-report``: the report (and CSV) of a store."""
    from .sweep_csv import write_csv
    from .sweep_report import write_report
    from .sweep_store import read_rows

    rows = read_rows(args.store, everything=args.all)
    out = Path(args.out)
    summary = {"points": len(rows), "out": str(out), "report": write_report(rows, out)}
    if args.csv:
        summary["csv"] = write_csv(rows, Path(args.csv))
    print(json.dumps(summary, default=str))
    return 0
