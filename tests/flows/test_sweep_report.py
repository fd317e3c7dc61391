"""The sweep report and CSV (:mod:`flows.sweep_report`): files, contents, determinism,
atomicity (nothing left behind on errors or interrupts), CSV order and columns."""

import csv
import io
import os

import matplotlib
import numpy as np
import pytest
from matplotlib.figure import Figure

from flows import sweep_report
from flows.sweep_csv import write_csv
from flows.sweep_report import write_report

PLOTS = [f"sweep_{k}.{f}" for k in ("latency", "energy") for f in ("png", "svg")]
BW_PLOTS = ["sweep_bandwidth.png", "sweep_bandwidth.svg"]


def point(model, array, spad, bw, *, fail=False):
    side = int(array.split("x")[0])
    rid = f"{model}-{array}-{spad}-{bw}"
    inputs = {"model": model, "base": "examples/arch/lego_fused.yaml", "array": array,
              "scratchpad_kib": spad, "dram_bytes_per_cycle": bw}
    if fail:
        return {"id": rid, "inputs": inputs, "status": "failed", "outputs": None,
                "error": f"no mapping for {model}\nline 2 | detail", "seconds": 0.5}
    cycles = (4096 * (2 if model == "dit" else 1)) // side ** 2 * (1 + 64 // spad) + 640 // bw
    return {"id": rid, "inputs": inputs, "status": "done", "seconds": 3.25, "error": None,
            "outputs": {"cycles": cycles, "energy_pj": cycles * 0.5 + spad, "pes": side * side,
                        "area": None, "utilization": 0.25 + side / 64, "mapper_seconds": 1.5,
                        "dataflows": {"gemm": {"OS": side // 8, "WS": 2}, "conv2d": {"IS": 1}}}}


def rows(bws=(8, 32)):
    out = [point(m, a, s, b, fail=(m, a, s, b) in {("dit", "16x16", 256, 8)})
           for m in ("dit", "llama") for a in ("8x8", "16x16") for s in (64, 256) for b in bws]
    return sorted(out, key=lambda r: r["id"])


def small():
    return [point("llama", a, 64, 8) for a in ("8x8", "16x16")]


def names(folder):
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture(scope="module")
def twice(tmp_path_factory):
    """The same rows written twice (the second time in reverse order) into two folders."""
    root = tmp_path_factory.mktemp("report")
    salt = matplotlib.rcParams["svg.hashsalt"]
    first = write_report(rows(), root / "a" / "nested")
    second = write_report(rows()[::-1], root / "b")
    assert matplotlib.rcParams["svg.hashsalt"] == salt           # caller's rcParams untouched
    return root, first, second


def test_files_written(twice):
    root, first, second = twice
    assert [p.name for p in first[:2]] == ["sweep.md", "sweep.html"]
    assert sorted(p.name for p in first) == sorted(["sweep.md", "sweep.html", *PLOTS, *BW_PLOTS])
    assert names(root / "a" / "nested") == sorted(p.name for p in first)  # no temporary left
    assert names(root / "a") == ["nested"] and names(root) == ["a", "b"]
    assert first[0] == root / "a" / "nested" / "sweep.md"


@pytest.mark.parametrize("name", ["sweep.md", "sweep.html", *PLOTS, *BW_PLOTS])
def test_deterministic(twice, name):
    root, _, _ = twice
    assert (root / "a" / "nested" / name).read_bytes() == (root / "b" / name).read_bytes()


def test_markdown_contents(twice):
    md = (twice[0] / "b" / "sweep.md").read_text()
    assert md.startswith("# Design-space sweep\n\n16 points: 15 done, 1 failed; 2 models "
                         "(dit, llama); 8 architectures, 7 with every model done.")
    assert "Area is the number of PEs (area proxy" in md
    assert "Fixed axes: base=examples/arch/lego_fused.yaml." in md
    assert "| mix | 7 | 1 | 2 | 2 |" in md and "| dit | 7 | 1 | " in md
    head = ("| array | dram_bytes_per_cycle | scratchpad_kib | PEs (area proxy) | cycles | "
            "energy pJ | utilization | conv2d | gemm |")
    assert md.count(head) == 6                                  # 2 kinds x (2 models + mix)
    assert "### mix: Pareto front" in md and "| 16x16 | 32 | 256 | 256 | " in md
    assert "| latency / mix | gemm | WS 8, OS 6 |" in md         # counts along a front
    assert "## Bandwidth sensitivity" in md and "| cycles at 8 | cycles at 32 |" in md
    assert "![bandwidth](sweep_bandwidth.png)" in md
    assert ("## Failures (1)\n\n| id | model | architecture | error |\n|---|---|---|---|\n"
            "| dit-16x16-256-8 | dit | array=16x16, dram_bytes_per_cycle=8, scratchpad_kib=256 "
            "| no mapping for dit / line 2 \\| detail |") in md
    assert "3.25" not in md and "seconds" not in md             # no timing
    html = (twice[0] / "b" / "sweep.html").read_text()
    assert html.count("data:image/png;base64,") == 3
    assert "no mapping for dit<br>line 2 | detail" in html


def test_no_bandwidth_plot_and_stale_one_removed(twice, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    for name in BW_PLOTS + ["keep.txt"]:
        (out / name).write_text("old")
    written = write_report(small(), out)
    assert names(out) == sorted(["keep.txt", "sweep.md", "sweep.html", *PLOTS])
    assert len(written) == 6
    md = (out / "sweep.md").read_text()
    assert "Bandwidth" not in md and "## Failures (0)\n\nNone.\n" in md
    assert "| llama | 2 | 0 | 2 | 2 |" in md


def snapshot(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir()} if folder.exists() else None


@pytest.mark.parametrize("error", [RuntimeError("plot broke"), KeyboardInterrupt()])
def test_nothing_left_when_plotting_fails(tmp_path, monkeypatch, error):
    def broken(*args, **kwargs):
        raise error

    monkeypatch.setattr(sweep_report, "_plot_fronts", broken)
    with pytest.raises(type(error)):
        write_report(small(), tmp_path / "new")
    assert names(tmp_path) == []                                # not created, no temporary


def test_existing_folder_unchanged_on_failed_save(tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    (out / "sweep.md").write_text("the old report")
    before = snapshot(out)
    calls = []
    real = Figure.savefig

    def flaky(self, fname, *args, **kwargs):
        calls.append(fname)
        if len(calls) == 3:                         # half-written file, then the crash
            open(fname, "wb").write(b"partial")
            raise OSError("disk full")
        return real(self, fname, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", flaky)
    with pytest.raises(OSError, match="disk full"):
        write_report(small(), out)
    assert snapshot(out) == before and names(tmp_path) == ["out"]


def test_failed_move_removes_what_moved(tmp_path, monkeypatch):
    moves = []
    real = os.replace

    def flaky(src, dst):
        moves.append(dst)
        if len(moves) == 3:
            raise OSError("rename failed")
        real(src, dst)

    def quick(folder, kind, sw):                        # stand-in plots: only moves matter
        paths = [folder / f"sweep_{kind}.{f}" for f in ("png", "svg")]
        for p in paths:
            p.write_bytes(b"plot")
        return paths

    monkeypatch.setattr(sweep_report, "_plot_fronts", quick)
    monkeypatch.setattr(sweep_report.os, "replace", flaky)
    with pytest.raises(OSError, match="rename failed"):
        write_report(small(), tmp_path / "new")
    assert len(moves) == 3 and names(tmp_path) == []


def test_bad_input_writes_nothing(tmp_path):
    bad = small()
    bad[0]["outputs"]["energy_pj"] = float("nan")
    with pytest.raises(ValueError, match=r"outputs\['energy_pj'\] = nan"):
        write_report(bad, tmp_path / "new")
    with pytest.raises(ValueError, match="status 'weird'"):
        write_report([{**small()[0], "status": "weird"}], tmp_path / "new")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="exists and is not a folder"):
        write_report(small(), tmp_path / "file")
    assert names(tmp_path) == ["file"]


def read_csv(path):
    return list(csv.reader(io.StringIO(path.read_text())))


def test_csv(tmp_path):
    path = write_csv(rows(), tmp_path / "deep" / "sweep.csv")
    table = read_csv(path)
    assert table[0] == ["array", "base", "dram_bytes_per_cycle", "model", "scratchpad_kib",
                        "out.area", "out.cycles", "out.dataflows", "out.energy_pj", "out.pes",
                        "out.utilization", "status", "error"]     # no id, no timing
    body = table[1:]
    assert len(body) == 16 and all(len(r) == 13 for r in body)
    keys = [(r[3], int(r[0].split("x")[0]), r[1], int(r[2]), int(r[4])) for r in body]
    assert keys == sorted(keys)                        # model, then array 8x8 before 16x16 ...
    assert body[0][:5] == ["8x8", "examples/arch/lego_fused.yaml", "8", "dit", "64"]
    assert body[0][7] == '{"conv2d":{"IS":1},"gemm":{"OS":1,"WS":2}}'
    assert body[0][10] == "0.375" and body[0][5] == ""
    failed = [r for r in body if r[11] == "failed"]
    assert failed == [["16x16", "examples/arch/lego_fused.yaml", "8", "dit", "256",
                       "", "", "", "", "", "", "failed", "no mapping for dit\nline 2 | detail"]]
    assert names(tmp_path / "deep") == ["sweep.csv"]
    text = path.read_text()
    assert "3.25" not in text and "seconds" not in text and "1.5" not in text


def test_csv_identical_for_permuted_rows(tmp_path):
    import random

    shuffled = rows()
    random.Random(3).shuffle(shuffled)
    one, two = write_csv(rows(), tmp_path / "1.csv"), write_csv(shuffled, tmp_path / "2.csv")
    assert one.read_bytes() == two.read_bytes()
    numpyish = rows()                                  # numpy numbers write as Python ones
    for r in numpyish:
        r["inputs"]["scratchpad_kib"] = np.int64(r["inputs"]["scratchpad_kib"])
        if r["outputs"]:
            r["outputs"]["energy_pj"] = np.float64(r["outputs"]["energy_pj"])
            r["outputs"]["dataflows"]["gemm"]["WS"] = np.int32(2)
    assert write_csv(numpyish, tmp_path / "4.csv").read_bytes() == one.read_bytes()
    changed = rows()
    changed[5]["outputs"]["cycles"] += 1
    changed[6]["seconds"] = 99.0                       # timing only: no difference
    diff = [(a, b) for a, b in zip(one.read_text().splitlines(),
                                   write_csv(changed, tmp_path / "3.csv").read_text()
                                   .splitlines(), strict=True) if a != b]
    assert len(diff) == 1


def test_csv_atomic_and_errors(tmp_path, monkeypatch):
    path = tmp_path / "s.csv"
    path.write_text("old")

    def broken(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(KeyboardInterrupt):
        write_csv(rows(), path)
    assert path.read_text() == "old" and names(tmp_path) == ["s.csv"]
    monkeypatch.undo()
    with pytest.raises(ValueError, match="is a folder"):
        write_csv(rows(), tmp_path)
    with pytest.raises(ValueError, match="duplicate id"):
        write_csv(rows() + rows()[:1], path)
    assert path.read_text() == "old"


def test_each_base_its_marker(tmp_path, monkeypatch):
    """With two bases, every done point is drawn once faint with its base's marker (and the
    front again, in the front colour); one base: circles only."""
    from matplotlib.axes import Axes

    drawn = []
    real = Axes.scatter

    def record(self, x, y, *a, **k):
        drawn.append((k.get("marker"), k.get("color"), len(x)))
        return real(self, x, y, *a, **k)

    monkeypatch.setattr(Axes, "scatter", record)
    two = rows(bws=(8,))
    for r in two[::2]:
        r["inputs"]["base"] = "examples/arch/gemmini_like.yaml"
    write_report(two, tmp_path / "two")
    faint = [(m, n) for m, c, n in drawn if c == "#8c8c8c"]
    assert {m for m, _ in faint} == {"o", "s"}       # gemmini_like "o", lego_fused "s"
    done_per_model = sum(r["status"] == "done" for r in two)
    assert sum(n for _, n in faint) >= done_per_model  # the models' panels, then the mix
    drawn.clear()
    write_report(rows(bws=(8,)), tmp_path / "one")
    assert {m for m, _, _ in drawn} == {"o"}
