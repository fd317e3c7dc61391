"""Running sweeps (flows.sweep_run, flows.sweep_eval, ``lego sweep``): the point's
architecture and outputs, reruns that reuse every finished point, failures recorded and not
fatal, a sweep killed with SIGKILL and resumed to the same rows (Ray: test_sweep_ray.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flows.cli import main
from flows.sweep_eval import arch_for, evaluate
from flows.sweep_run import run_sweep
from flows.sweep_spec import canonical_json, load_sweep, sweep_from_dict
from flows.sweep_store import StoreError, read_rows
from hw.front.spec_model import SpecError

ROOT = Path(__file__).resolve().parents[2]
FUSED, GEMMINI = "examples/arch/lego_fused.yaml", "examples/arch/gemmini_like.yaml"
SMALL = {"name": "small", "models": ["tiny-llama3-8b-duo", "tiny-sana-0.6b"], "base": FUSED,
         "axes": {"array": ["8x8", "16x16"]}}
#: enough points (18, about 3 s of mapping in one worker) to kill a run in the middle.
KILL = """name: kill
models: [tiny-llama3-8b-duo, tiny-sana-0.6b, tiny-vila-u]
base: examples/arch/lego_fused.yaml
axes: {array: [8x8, 16x16], scratchpad_kib: [64, 256, 1024]}
"""


def lego(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "flows.cli", *args], capture_output=True,
                          text=True, timeout=300, cwd=cwd)


def without_seconds(rows):
    return canonical_json([{k: v for k, v in r.items() if k != "seconds"} for r in rows])


@pytest.fixture(scope="module")
def small_rows(tmp_path_factory):
    """The SMALL sweep on the pool: (summary, rows)."""
    path = tmp_path_factory.mktemp("small") / "s.db"
    summary = run_sweep(sweep_from_dict(SMALL), path, workers=2, progress=None)
    return summary, read_rows(path), path


def test_arch_for_applies_the_axes():
    base = {"base": GEMMINI, "array": "32x32", "types": "int8,int8,int32",
            "dataflows": "weight_stationary+output_stationary", "scratchpad_kib": 1024,
            "accumulator_kib": 128, "dram_bytes_per_cycle": 32}
    arch = arch_for(base)
    assert arch.array == (32, 32) and arch.pes == 1024
    assert [d.name for d in arch.dataflows] == ["weight_stationary", "output_stationary"]
    # the scratchpad row is the DRAM beat; an accumulator row holds an edge of int32
    assert (arch.scratchpad.capacity_bytes, arch.scratchpad.row_bytes) == (1 << 20, 32)
    assert (arch.accumulator.capacity_bytes, arch.accumulator.row_bytes) == (128 << 10, 128)
    assert arch.dram.bytes_per_cycle == 32 and arch.dram.latency_cycles == 100
    small = arch_for({**base, "array": "8x8", "base": FUSED, "dram_bytes_per_cycle": 16})
    assert (small.scratchpad.row_bytes, small.accumulator.row_bytes) == (16, 64)
    assert small.units.requant.lanes == 16
    wide = arch_for({**base, "array": "16x16", "dram_bytes_per_cycle": 128})
    assert (wide.scratchpad.row_bytes, wide.accumulator.row_bytes) == (128, 128)
    with pytest.raises(SpecError, match="not a multiple of the array edge 3"):
        arch_for({**base, "array": "3x3", "base": FUSED})
    with pytest.raises(SpecError, match="a row of 16 bytes holds fewer than 32 8-bit"):
        arch_for({**base, "dram_bytes_per_cycle": 16})
    # without a bandwidth axis, the beat widens to an array edge
    spec = sweep_from_dict({**SMALL, "axes": {"array": ["8x8", "32x32"]}})
    assert {(p["array"], p["dram_bytes_per_cycle"]) for _, p in spec.points} == {
        ("8x8", 16), ("32x32", 32)}


def test_evaluate_outputs():
    (_, inputs), = sweep_from_dict({**SMALL, "models": ["tiny-llama3-8b-duo"],
                                    "axes": {}}).points
    out = evaluate(inputs)
    assert out == json.loads(canonical_json(out)) == evaluate(inputs)
    assert set(out) == {"cycles", "latency_s", "energy_pj", "dram_bytes", "macs",
                        "utilization", "pes", "sram_bytes", "area", "cycles_by_kind",
                        "dataflows"}
    assert out["pes"] == 256 and out["area"] is None and out["latency_s"] == out["cycles"] / 1e9
    assert out["cycles"] == sum(out["cycles_by_kind"].values())
    assert out["utilization"] == out["macs"] / (256 * out["cycles"])
    assert set(out["dataflows"]["linear"]) <= {"output_stationary", "weight_stationary",
                                               "input_stationary", "spatial_reduction"}


def test_rerun_reuses_every_point(small_rows):
    summary, rows, path = small_rows
    assert summary == {"points": 4, "computed": 4, "reused": 0, "failed": 0, "stale": 0,
                       "dropped": 0, "store": str(path)}
    assert all(r["status"] == "done" for r in rows) and len(rows) == 4
    again = run_sweep(sweep_from_dict(SMALL), path, workers=2, progress=None)
    assert again == {**summary, "computed": 0, "reused": 4}
    assert read_rows(path) == rows                  # nothing rewritten: seconds included


def test_stale_points_recomputed_and_dropped_points_hidden(tmp_path, monkeypatch):
    """Points done by other code (another :func:`code_digest`) are computed again; points an
    edited sweep no longer has stay stored but are not read (unless asked for)."""
    import flows.sweep_run

    spec = sweep_from_dict(SMALL)
    path = tmp_path / "s.db"
    first = run_sweep(spec, path, workers=1, progress=None)
    monkeypatch.setattr(flows.sweep_run, "code_digest", lambda: "another-code")
    again = run_sweep(spec, path, workers=1, progress=None)
    assert (again["computed"], again["reused"], again["stale"]) == (4, 0, 4)
    assert run_sweep(spec, path, workers=1, progress=None)["reused"] == 4
    fewer = sweep_from_dict({**SMALL, "axes": {"array": ["8x8"]}})
    summary = run_sweep(fewer, path, workers=1, progress=None)
    assert (summary["points"], summary["reused"], summary["dropped"]) == (2, 2, 2)
    assert [r["inputs"]["array"] for r in read_rows(path)] == ["8x8", "8x8"]
    assert len(read_rows(path, everything=True)) == first["points"] == 4
    assert all(r["status"] == "done" for r in read_rows(path, everything=True))


def test_failed_point_recorded_and_retried(tmp_path):
    spec = sweep_from_dict({**SMALL, "models": ["tiny-llama3-8b-duo"],
                            "axes": {"array": ["3x3", "16x16"]}})
    path = tmp_path / "f.db"
    assert run_sweep(spec, path, workers=1, progress=None)["failed"] == 1
    rows = {r["inputs"]["array"]: r for r in read_rows(path)}
    assert rows["16x16"]["status"] == "done" and rows["16x16"]["error"] is None
    assert rows["3x3"]["status"] == "failed" and rows["3x3"]["outputs"] is None
    assert rows["3x3"]["error"] == ("SpecError: units.dequant.group = 64 is not a multiple of "
                                    "the array edge 3")
    again = run_sweep(spec, path, workers=1, progress=None)   # failures are tried again
    assert (again["computed"], again["reused"], again["failed"]) == (1, 1, 1)


def test_kill_9_then_resume(tmp_path):
    sweep_file, store = tmp_path / "kill.yaml", tmp_path / "kill.db"
    sweep_file.write_text(KILL)
    total = len(load_sweep(sweep_file).points)
    proc = subprocess.Popen([sys.executable, "-m", "flows.cli", "sweep", str(sweep_file),
                             "--store", str(store), "--workers", "1"], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 120
    try:
        while not _done_ids(store):
            assert proc.poll() is None, "the sweep ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)         # the CLI and its workers, mid-sweep
        proc.wait()
    before = _done_ids(store)
    assert 0 < len(before) < total
    r = lego("sweep", str(sweep_file), "--store", str(store), "--workers", "2")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout.splitlines()[-1])
    assert summary["points"] == total and summary["failed"] == 0
    assert summary["reused"] >= len(before) and summary["computed"] == total - summary["reused"]
    reference = tmp_path / "reference.db"
    run_sweep(load_sweep(sweep_file), reference, workers=2, progress=None)
    assert without_seconds(read_rows(store)) == without_seconds(read_rows(reference))


def _done_ids(store: Path) -> set[str]:
    try:
        return {r["id"] for r in read_rows(store) if r["status"] == "done"}
    except StoreError:                              # not there yet, or its tables not yet
        return set()


def test_cli_errors_and_report(small_rows, tmp_path, capsys):
    assert main(["sweep", "examples/sweeps/lego_vs_gemmini.yaml", "--store",
                 str(tmp_path / "x.db"), "--address", "auto"]) == 1
    assert capsys.readouterr().err == "lego: error: --address goes with --backend ray\n"
    (tmp_path / "other.yaml").write_text(json.dumps({**SMALL, "name": "other"}))
    assert main(["sweep", str(tmp_path / "other.yaml"), "--store", str(small_rows[2])]) == 1
    assert "holds sweep 'small', not 'other'" in capsys.readouterr().err
    assert not (tmp_path / "x.db").exists()
    assert main(["sweep-report", str(small_rows[2]), "--out", str(tmp_path / "report"),
                 "--csv", str(tmp_path / "points.csv")]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["points"] == 4
    assert main(["sweep", "examples/sweeps/lego_vs_gemmini.yaml", "--store",
                 str(tmp_path / "x.db"), "--measure", "cost,aera"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("lego: error: measure[1]: unknown measure 'aera'") and "'area'" in err
    assert not (tmp_path / "x.db").exists()


def test_cli_measure_replaces_the_files(tmp_path, capsys):
    """``--measure`` makes other points (the measures are inputs); the report reads the
    sweep as last run, ``--all`` every stored row."""
    (tmp_path / "s.yaml").write_text(json.dumps({**SMALL, "base": GEMMINI,  # its shipped
                                                 "axes": {"array": ["16x16"]}}))  # RTL build
    store = str(tmp_path / "s.db")
    assert main(["sweep", str(tmp_path / "s.yaml"), "--store", store, "--workers", "1"]) == 0
    capsys.readouterr()
    assert main(["sweep", str(tmp_path / "s.yaml"), "--store", store, "--workers", "1",
                 "--measure", "cost,rtl"]) == 0
    summary = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert (summary["computed"], summary["dropped"]) == (2, 2)
    rows = read_rows(store)
    assert [r["inputs"]["measure"] for r in rows] == [["cost", "rtl"]] * 2
    assert all(len(r["outputs"]["rtl"]["checked"]) == 2 for r in rows)
    assert main(["sweep-report", store, "--out", str(tmp_path / "r"), "--all"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["points"] == 4
