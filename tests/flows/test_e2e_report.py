"""The report of an end-to-end run (:mod:`flows.e2e_report`): contents, atomicity,
determinism, and ``lego e2e --out``."""

import base64
import json
from pathlib import Path

import pytest

from flows import e2e_report
from flows.e2e import run_e2e
from flows.e2e_report import TIMINGS_MARK, e2e_with_report, write_report
from hw.front.arch import load_arch

MODEL = "tiny-llama3-8b-duo"
STEM = f"{MODEL}_e2e"
ARCH = "examples/arch/lego_fused.yaml"


@pytest.fixture(scope="module")
def mapped():
    """(run, schedule) of the tiny model on the reference machine, once for the module."""
    from mapping.mapper import map_model
    from mapping.zoo import model

    arch = load_arch(ARCH)
    return run_e2e(MODEL, arch, engine="ref"), map_model(model(MODEL), arch=arch)


def _files(folder):
    return sorted(p.name for p in folder.iterdir())


def test_contents(mapped, tmp_path):
    run, schedule = mapped
    out = tmp_path / "new" / "dir"                    # created
    written = write_report(run, schedule, out, {"e2e run": 1.5})
    assert [p.name for p in written[:2]] == [f"{STEM}.md", f"{STEM}.html"]
    assert sorted(p.name for p in written[2:]) == sorted(
        f"{STEM}_{k}.{f}" for k in ("utilization", "roofline") for f in ("png", "svg"))
    assert _files(out) == sorted(p.name for p in written)    # no temporary left
    md = (out / f"{STEM}.md").read_text()
    assert md.startswith(f"# {MODEL} end to end on lego_fused (ref engine)\n")
    assert "**PASS**" in md and run.passed
    for key, value in run.report().items():               # the summary: every JSON field
        assert f"| {key} | {json.dumps(value)} |" in md
    for op in run.ops:                                    # a row per call, cycles 3 ways
        row = next(line for line in md.splitlines() if line.startswith(f"| {op.name} |"))
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[1:7] == ["x".join(map(str, op.shape)), op.dataflow, str(op.model_cycles),
                              "-", str(op.mapper_cycles), str(op.dram_bytes)]
        assert cells[8] == "yes"
    gpu = md[md.index("## GPU calls\n"):md.index("## Left in torch")].splitlines()
    assert len(gpu) == 2 + 2 + len(run.gpu_ops) + 1 and run.gpu_ops     # a row per GPU call
    for op, row in zip(run.gpu_ops, gpu[4:-1], strict=True):
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[:4] == [op.name, op.kernel, "x".join(map(str, op.shape)),
                             str(op.launches)] and op.launches > 0
    assert "GPU calls launched and within bounds True" in md
    for kind in run.torch_ops:
        assert f"- {kind}\n" in md
    assert "layer.gate_up" in md and "time by target" in md    # the mapper's table
    assert "mapped in" not in md                               # its wall time: timings only
    assert f"![roofline]({STEM}_roofline.png)" in md
    assert md.rstrip().splitlines()[-1] == f"{TIMINGS_MARK} e2e run 1.50 s"
    page = (out / f"{STEM}.html").read_text()
    png = base64.b64encode((out / f"{STEM}_utilization.png").read_bytes()).decode()
    assert page.startswith("<!DOCTYPE html>") and png in page      # self-contained
    assert "<td>layers.0.qkv#1</td>" in page and "<strong>PASS</strong>" in page
    assert "<h2>GPU calls</h2>" in page and "<td>sw.duo_attention.decode_step</td>" in page


def test_without_the_gpu_run(tmp_path):
    """No GPU run, no GPU section (the report as before it)."""
    from mapping.mapper import map_model
    from mapping.zoo import model

    arch = load_arch(ARCH)
    run = run_e2e(MODEL, arch, engine="ref", gpu=False)
    write_report(run, map_model(model(MODEL), arch=arch), tmp_path)
    md = (tmp_path / f"{STEM}.md").read_text()
    assert "GPU calls" not in md and "| max_err_gpu | null |" in md


def test_deterministic(mapped, tmp_path):
    """Byte-identical twice without timings; with them, only the marked line differs."""
    run, schedule = mapped
    a, b, c = (tmp_path / n for n in "abc")
    write_report(run, schedule, a)
    write_report(run, schedule, b)
    write_report(run, schedule, c, {"e2e run": 2.0})
    assert _files(a) == _files(b) == _files(c)
    for name in _files(a):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    plain, timed = ((d / f"{STEM}.md").read_text() for d in (a, c))
    assert TIMINGS_MARK not in plain
    assert timed == plain + f"\n{TIMINGS_MARK} e2e run 2.00 s\n"
    for name in _files(a):
        if not name.endswith((".md", ".html")):
            assert (a / name).read_bytes() == (c / name).read_bytes(), name


@pytest.mark.parametrize("error", [KeyboardInterrupt, RuntimeError])
@pytest.mark.parametrize("where", ["_markdown", "_html"])
def test_atomic(mapped, tmp_path, monkeypatch, error, where):
    """An interrupt or error inside the writer leaves no report file (and no temporary);
    files that were there stay."""
    run, schedule = mapped
    (tmp_path / "keep.txt").write_text("x")

    def boom(*args, **kwargs):
        raise error("stop")

    monkeypatch.setattr(e2e_report, where, boom)
    with pytest.raises(error):
        write_report(run, schedule, tmp_path)
    assert _files(tmp_path) == ["keep.txt"]


def test_atomic_while_renaming(mapped, tmp_path, monkeypatch):
    """An interrupt after some files were renamed into place removes those too."""
    run, schedule = mapped
    real, calls = e2e_report.os.replace, []

    def replace(src, dst):                    # the plots' own renames are inside the temp
        if Path(dst).parent == tmp_path:
            calls.append(dst)
            if len(calls) == 3:
                raise KeyboardInterrupt
        real(src, dst)

    monkeypatch.setattr(e2e_report.os, "replace", replace)
    with pytest.raises(KeyboardInterrupt):
        write_report(run, schedule, tmp_path)
    assert len(calls) == 3 and _files(tmp_path) == []


def test_out_not_a_folder(mapped, tmp_path):
    run, schedule = mapped
    (tmp_path / "f").write_text("")
    with pytest.raises(ValueError, match="exists and is not a folder"):
        write_report(run, schedule, tmp_path / "f")


def test_without_out():
    run, schedule, written = e2e_with_report(MODEL, load_arch(ARCH), engine="ref")
    assert run.passed and schedule is None and written == []


def test_cli_e2e_out(tmp_path):
    from tests.flows.test_cli import lego

    r = lego("e2e", MODEL, "--engine", "ref", "--out", str(tmp_path / "rep"))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert json.loads(lines[-1])["pass"] is True
    assert lines[-2].startswith("wrote ") and f"{STEM}.md" in lines[-2]
    assert (tmp_path / "rep" / f"{STEM}.html").is_file()
