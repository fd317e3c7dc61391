"""The report of one ``lego e2e`` run (:func:`write_report`): ``<model>_e2e.md`` and a
self-contained ``<model>_e2e.html``, with the mapper's plots of the same tiny model
(``<model>_e2e_utilization`` and ``<model>_e2e_roofline``, PNG and SVG) next to them.

Contents, in order: the verdict; the run's summary (the fields of
:meth:`flows.e2e.E2ERun.report`); a row per accelerator call (shape, dataflow, cycles of the
cycle model / the RTL / the mapper, DRAM bytes, utilization, bit-exact, error and its bound);
the error per block call against float (:mod:`flows.e2e_blocks`);
with the GPU run, a row per GPU kernel call (kernel, shape, Triton launches, bit-exact, error
and its bound); the operators left in torch; a row per operator left in torch costed on the
host (:mod:`flows.e2e_host`: kind, elements, MACs, vector work, DRAM bytes, host cycles, bound,
pJ; ``-`` and a note where the host has no cost for it); the mapper's schedule of the model
(:func:`mapping.report.format_schedule`, its wall time moved to the timings line); the two
plots (:func:`mapping.plots.plot_schedule`: the Markdown links the PNG files, the HTML embeds
them). Deterministic: the same run and schedule give byte-identical files, except the one
line that starts with :data:`TIMINGS_MARK` (written only when timings are given).

Atomic: everything is written into a hidden temporary folder inside ``out_dir`` and renamed
into place at the end (the Markdown and HTML last); an exception or a ``KeyboardInterrupt``
before that leaves no report file, and the temporary folder is removed.

:func:`e2e_with_report` is what ``lego e2e --out`` and ``lego demo`` run: map, run end to
end, write.

Layer: flows.
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from hw.front.arch import ArchSpec
from mapping.schedule import Schedule

from .e2e import E2ERun, run_e2e

__all__ = ["TIMINGS_MARK", "e2e_with_report", "write_generate_report", "write_report"]

TIMINGS_MARK = "Timings (vary run to run):"
"""The start of the report's only non-deterministic line."""
_PLOTS = ("utilization", "roofline")
_CALL_HEAD = ("accelerator call", "shape", "dataflow", "model cycles", "RTL cycles",
              "mapper cycles", "DRAM bytes", "utilization", "bit-exact", "max error",
              "error bound")
_GPU_HEAD = ("GPU call", "kernel", "shape", "launches", "bit-exact", "max error", "error bound")
_HOST_TITLE = "Host operators (costed, run in torch float32)"
_HOST_HEAD = ("operator", "kind", "elements", "MACs", "FP32 ops", "transcendentals",
              "DRAM bytes", "host cycles", "bound", "energy pJ", "note")


def _call_rows(run: E2ERun) -> list[tuple[str, ...]]:
    """A row per accelerator call of ``run`` (:data:`_CALL_HEAD`)."""
    return [(op.name, "x".join(map(str, op.shape)), op.dataflow, str(op.model_cycles),
             "-" if op.rtl_cycles is None else str(op.rtl_cycles), str(op.mapper_cycles),
             str(op.dram_bytes), f"{op.utilization:.4f}", "yes" if op.bit_exact else "NO",
             f"{op.err:.3e}", f"{op.err_bound:.3e}") for op in run.ops]


def _gpu_rows(run: E2ERun) -> list[tuple[str, ...]]:
    """A row per GPU kernel call of ``run`` (:data:`_GPU_HEAD`)."""
    return [(op.name, op.kernel, "x".join(map(str, op.shape)), str(op.launches),
             {None: "-", True: "yes", False: "NO"}[op.bit_exact], f"{op.err:.3e}",
             f"{op.err_bound:.3e}") for op in run.gpu_ops]


def _host_rows(run: E2ERun) -> list[tuple[str, ...]]:
    """A row per operator of ``run`` left in torch, costed on the host (:data:`_HOST_HEAD`)."""
    return [(op.name, f"{op.kind}/{op.what}" if op.what else op.kind, str(op.elements),
             str(op.macs), str(op.fp32_ops), str(op.transcendentals), str(op.dram_bytes),
             "-" if op.cycles is None else str(op.cycles), op.bound or "-",
             "-" if op.energy_pj is None else f"{op.energy_pj:.4g}", op.note)
            for op in run.host_ops]


def _host_line(run: E2ERun) -> str:
    """The host section's sentence: cycles, the sequential total, what has no cost."""
    from mapping.host_cost import DEFAULT_HOST

    if not run.host_ops:
        return "None (the run did not cost its torch operators on the host)."
    missing = sum(op.cycles is None for op in run.host_ops)
    return (f"Host cycles {run.host_cycles} (a host of {DEFAULT_HOST.lanes} FP32 lanes on the "
            f"DRAM port, mapping.host_cost); total {run.total_cycles} = accelerator "
            f"{run.accel_cycles} + host {run.host_cycles}, sequential (no overlap modelled); "
            f"{missing} operator(s) "
            "without a host cost function, not in the total.")


_BLOCK_HEAD = ("block call", "max abs error", "relative")


def _block_rows(run: E2ERun) -> list[tuple[str, ...]]:
    """A row per block call of ``run`` (:mod:`flows.e2e_blocks`)."""
    return [(name, f"{err:.3e}", f"{rel:.3e}") for name, err, rel in run.blocks]


def _summary_rows(run: E2ERun) -> list[tuple[str, str]]:
    """(field, JSON value) of each field of the run's JSON line."""
    return [(k, json.dumps(v)) for k, v in run.report().items()]


def _schedule_text(schedule: Schedule) -> str:
    """The mapper's table of ``schedule`` without its wall time (that is in the timings)."""
    from mapping.report import format_schedule

    head, _, rest = format_schedule(schedule).partition("\n")
    return re.sub(r", mapped in [0-9.]+ s$", "", head) + "\n" + rest


def _timings_line(timings: Mapping[str, float] | None) -> str | None:
    """The one non-deterministic line (None without timings)."""
    if not timings:
        return None
    return TIMINGS_MARK + " " + ", ".join(f"{k} {v:.2f} s" for k, v in timings.items())


def _md_table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    return [line(head), "|" + "---|" * len(head), *(line(r) for r in rows)]


def _html_table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    def line(cells: Sequence[str], tag: str) -> str:
        return "<tr>" + "".join(f"<{tag}>{html.escape(c)}</{tag}>" for c in cells) + "</tr>"

    return ["<table>", line(head, "th"), *(line(r, "td") for r in rows), "</table>"]


def _title(run: E2ERun) -> str:
    return f"{run.model} end to end on {run.arch} ({run.engine} engine)"


def _verdict(run: E2ERun) -> str:
    return "PASS" if run.passed else "FAIL"


def _checks(run: E2ERun) -> str:
    """What the verdict rests on, in words."""
    gpu = "" if run.max_err_gpu is None else \
        f", GPU calls launched and within bounds {run.gpu_within_bounds}"
    return (f"bit-exact against golden {'yes' if run.bit_exact else 'NO'}, cycles match "
            f"{run.cycles_match}, errors within bounds {run.within_bounds}{gpu}")


def _gpu_markdown(run: E2ERun) -> list[str]:
    """The GPU calls' section in Markdown (nothing without the GPU run)."""
    if run.max_err_gpu is None:
        return []
    return ["## GPU calls", "", *_md_table(_GPU_HEAD, _gpu_rows(run)), ""]


def _gpu_html(run: E2ERun) -> list[str]:
    """The GPU calls' section in HTML (nothing without the GPU run)."""
    if run.max_err_gpu is None:
        return []
    return ["<h2>GPU calls</h2>", *_html_table(_GPU_HEAD, _gpu_rows(run))]


def _markdown(run: E2ERun, schedule: Schedule, stem: str, timings: str | None) -> str:
    """The Markdown report; plots linked as ``<stem>_<kind>.png`` next to it."""
    lines = [f"# {_title(run)}", "", f"**{_verdict(run)}**: {_checks(run)}.", "",
             "## Summary", "",
             *_md_table(("field", "value"), _summary_rows(run)), "",
             "## Accelerator calls", "", *_md_table(_CALL_HEAD, _call_rows(run)), "",
             "## Error per block (accelerator against float)", "",
             *_md_table(_BLOCK_HEAD, _block_rows(run)), "",
             *_gpu_markdown(run), "## Left in torch", "",
             *(f"- {k}" for k in run.torch_ops or ("(none)",)), "",
             f"## {_HOST_TITLE}", "", _host_line(run), "",
             *_md_table(_HOST_HEAD, _host_rows(run)), "",
             "## The mapper's schedule", "", "```", _schedule_text(schedule), "```", "",
             "## Plots", ""]
    lines += [f"![{kind}]({stem}_{kind}.png)" for kind in _PLOTS]
    if timings:
        lines += ["", timings]
    return "\n".join(lines) + "\n"


def _html(run: E2ERun, schedule: Schedule, pngs: Mapping[str, bytes],
          timings: str | None) -> str:
    """The HTML report, self-contained (the plots embedded as PNG data)."""
    title = html.escape(_title(run))
    body = [f"<h1>{title}</h1>", f"<p><strong>{_verdict(run)}</strong>: "
            f"{html.escape(_checks(run))}.</p>", "<h2>Summary</h2>",
            *_html_table(("field", "value"), _summary_rows(run)),
            "<h2>Accelerator calls</h2>", *_html_table(_CALL_HEAD, _call_rows(run)),
            "<h2>Error per block (accelerator against float)</h2>",
            *_html_table(_BLOCK_HEAD, _block_rows(run)),
            *_gpu_html(run), "<h2>Left in torch</h2>", "<ul>",
            *(f"<li>{html.escape(k)}</li>" for k in run.torch_ops or ("(none)",)), "</ul>",
            f"<h2>{html.escape(_HOST_TITLE)}</h2>", f"<p>{html.escape(_host_line(run))}</p>",
            *_html_table(_HOST_HEAD, _host_rows(run)),
            "<h2>The mapper's schedule</h2>",
            f"<pre>{html.escape(_schedule_text(schedule))}</pre>", "<h2>Plots</h2>"]
    for kind in _PLOTS:
        data = base64.b64encode(pngs[kind]).decode("ascii")
        body.append(f'<p><img alt="{kind}" src="data:image/png;base64,{data}"></p>')
    if timings:
        body.append(f"<p>{html.escape(timings)}</p>")
    style = ("body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:2px 6px;font-size:90%}")
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
            f"<title>{title}</title><style>{style}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")


def _folder(out_dir: str | Path) -> Path:
    """``out_dir``, created if missing; ``ValueError`` naming it if it is not a folder."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {str(out)!r} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    return out


def _atomic(out: Path, stem: str, write) -> list[Path]:
    """``write(tmp)`` (files into a hidden temporary folder of ``out``, returning their paths
    in the order to move them), then each moved into ``out``; nothing left on any error or
    interrupt. The paths written, in that order."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{stem}.", dir=out))
    moved: list[Path] = []
    try:
        for path in write(tmp):
            moved.append(out / path.name)
            os.replace(path, out / path.name)
    except BaseException:
        for path in moved:
            path.unlink(missing_ok=True)
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return moved


def write_report(run: E2ERun, schedule: Schedule, out_dir: str | Path,
                 timings: Mapping[str, float] | None = None) -> list[Path]:
    """Write ``run``'s report and ``schedule``'s plots (module docstring) into ``out_dir``
    (created if missing); ``timings`` (label -> seconds) go to the one line that varies.
    Returns the paths written: the Markdown, the HTML, then the plots. ``ValueError`` if
    ``out_dir`` is not a folder or the schedule cannot be plotted; nothing is left behind
    on any error or interrupt."""
    from mapping.plots import plot_schedule

    out = _folder(out_dir)
    stem = f"{run.model}_e2e"

    def write(tmp: Path) -> list[Path]:
        plots = plot_schedule(schedule.to_dict(), tmp / stem)
        pngs = {kind: (tmp / f"{stem}_{kind}.png").read_bytes() for kind in _PLOTS}
        line = _timings_line(timings)
        (tmp / f"{stem}.md").write_text(_markdown(run, schedule, stem, line), encoding="utf-8")
        (tmp / f"{stem}.html").write_text(_html(run, schedule, pngs, line), encoding="utf-8")
        return [*plots, tmp / f"{stem}.md", tmp / f"{stem}.html"]

    moved = _atomic(out, stem, write)
    return moved[-2:] + moved[:-2]


_CACHE_HEAD = ("KV head", "kind", "tokens", "programs", "model cycles", "RTL cycles",
               "RTL DRAM", "cache")


def _generate_sections(run) -> list[tuple[str, Sequence[str], list[tuple[str, ...]]]]:
    """(title, head, rows) of a generation's tables."""
    caches = [(c.name, c.kind, str(c.tokens), str(c.programs), str(c.model_cycles),
               "-" if c.rtl_cycles is None else str(c.rtl_cycles),
               "yes" if c.dram_match else "NO", "yes" if c.cache_match else "NO")
              for c in run.caches]
    tokens = [(k, " ".join(map(str, t))) for k, t in (
        ("float", run.tokens_float), ("accelerator", run.tokens_accel), ("GPU", run.tokens_gpu))
        if t]
    sections = [("Summary", ("field", "value"), _summary_rows(run)),
                ("Greedy tokens", ("run", "tokens"), tokens),
                ("KV caches after the generation", _CACHE_HEAD, caches),
                ("Accelerator calls", _CALL_HEAD, _call_rows(run))]
    if run.gpu_ops:
        sections.append(("GPU calls", _GPU_HEAD, _gpu_rows(run)))
    sections.append(("Error per layer call, accelerator vs float", _BLOCK_HEAD,
                     _block_rows(run)))
    if run.host_ops:
        sections.append(("Host operators (in torch, costed; " + _host_line(run) + ")",
                         _HOST_HEAD, _host_rows(run)))
    sections.append(("Left in torch", ("leaf kind",), [(k,) for k in run.torch_ops]))
    return sections


def write_generate_report(run, out_dir: str | Path) -> list[Path]:
    """Write a generation's report (:class:`flows.e2e_generate.GenerateRun`: its summary, the
    greedy tokens, the KV caches' checks, the accelerator and GPU calls) into ``out_dir``:
    ``<model>_generate.md`` and ``.html``, atomically (as :func:`write_report`); their
    paths. ``ValueError`` if ``out_dir`` is not a folder."""
    out, stem = _folder(out_dir), f"{run.model}_generate"
    title = (f"{run.model} generating on {run.arch} ({run.engine} engine): {run.prompt} "
             f"prompt tokens in chunks of {run.chunk}, {run.steps} decode steps")
    verdict = f"{_verdict(run)}: {_checks(run)}, KV caches match {run.kv_cache_match}."
    sections = _generate_sections(run)
    md = [f"# {title}", "", f"**{verdict}**", ""]
    body = [f"<h1>{html.escape(title)}</h1>", f"<p><strong>{html.escape(verdict)}</strong></p>"]
    for name, head, rows in sections:
        md += [f"## {name}", "", *_md_table(head, rows), ""]
        body += [f"<h2>{html.escape(name)}</h2>", *_html_table(head, rows)]

    def write(tmp: Path) -> list[Path]:
        (tmp / f"{stem}.md").write_text("\n".join(md), encoding="utf-8")
        (tmp / f"{stem}.html").write_text(
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>"
            f"{html.escape(title)}</title></head><body>\n" + "\n".join(body)
            + "\n</body></html>\n", encoding="utf-8")
        return [tmp / f"{stem}.md", tmp / f"{stem}.html"]

    return _atomic(out, stem, write)


def e2e_with_report(name: str, arch: ArchSpec, *, engine: str, seed: int = 0,
                    out_dir: str | Path | None = None, gpu: bool = True
                    ) -> tuple[E2ERun, Schedule | None, list[Path]]:
    """Tiny model ``name`` run end to end on ``arch`` (:func:`flows.e2e.run_e2e` with
    ``engine``, ``seed`` and ``gpu``); with ``out_dir``, also mapped
    (:func:`mapping.mapper.map_model`, its defaults) and its report written there
    (:func:`write_report`, timings included). The run, the schedule and the paths written
    (None and none without ``out_dir``).
    ``ValueError`` as those raise it (an unknown model or engine, ``out_dir`` not a folder)."""
    from mapping.mapper import map_model
    from mapping.zoo import model

    t0 = time.perf_counter()
    run = run_e2e(name, arch, engine=engine, seed=seed, gpu=gpu)
    t_run = time.perf_counter() - t0
    if out_dir is None:
        return run, None, []
    schedule = map_model(model(name), arch=arch)
    timings = {"e2e run": t_run, "mapping": schedule.mapper_seconds}
    return run, schedule, write_report(run, schedule, out_dir, timings)
