"""``lego map`` and ``lego compare`` run as a user runs them (subprocesses), and the schedule's
JSON round trip and text forms (mapping.schedule, mapping.report)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from hw.front.arch import load_arch
from mapping.mapper import map_model
from mapping.report import format_comparison, format_schedule, si
from mapping.schedule import load_schedule, write_json_atomic
from mapping.zoo import model

ARCHS = ("examples/arch/lego_fused.yaml", "examples/arch/gemmini_like.yaml")


def lego(*args):
    return subprocess.run([sys.executable, "-m", "flows.cli", *args], capture_output=True,
                          text=True, timeout=600)


def test_map_table_json_and_plots(tmp_path):
    out = tmp_path / "llama.json"
    r = lego("map", "tiny-llama3-8b-duo", "--set", "phase=prefill", "--json", str(out))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("tiny-llama3-8b-duo on lego_fused (accel)")
    assert any(line.startswith("layer.qkv ") and "weight_stationary" in line for line in lines)
    assert lines[-2].startswith("total:") or lines[-3].startswith("total:")
    data = json.loads(out.read_text())
    assert data["config"]["graph"]["phase"] == "prefill"
    assert data["totals"]["cycles"] == sum(e["cycles"] * e["count"] for e in data["entries"])
    for suffix in ("_utilization.png", "_utilization.svg", "_roofline.png", "_roofline.svg"):
        assert (tmp_path / f"llama{suffix}").stat().st_size > 0
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_map_gpu():
    r = lego("map", "tiny-sana-0.6b", "--target", "gpu", "--gpu", "H100")
    assert r.returncode == 0, r.stderr
    assert "on H100 (gpu)" in r.stdout and "cycles" not in r.stdout.splitlines()[1]


def test_compare_prints_ratios():
    r = lego("compare", "tiny-flux1-dev", "--arch", ARCHS[0], "--arch", ARCHS[1])
    assert r.returncode == 0, r.stderr
    assert "gemmini_like/lego_fused" in r.stdout
    total = [line for line in r.stdout.splitlines() if line.startswith("total")]
    assert len(total) == 2 and all(line.rstrip().endswith("x") for line in total)


@pytest.mark.parametrize("args, message", [
    (("map", "no-such-model"), "unknown model 'no-such-model'"),
    (("map", "tiny-sana-0.6b", "--set", "bogus=1"), "has no option 'bogus'"),
    (("map", "tiny-sana-0.6b", "--arch", "missing.yaml"), "missing.yaml"),
    (("map", "tiny-sana-0.6b", "--json", "/no/such/dir/x.json"), "does not exist"),
    (("map", "tiny-llama3-8b-duo", "--float-as", "none"), "cannot run"),
    (("compare", "tiny-sana-0.6b", "--arch", ARCHS[0]), "two or more --arch"),
])
def test_errors_one_line(args, message):
    r = lego(*args)
    assert r.returncode == 1, r.stdout
    assert r.stderr.startswith("lego: error:") and message in r.stderr
    assert "Traceback" not in r.stderr


def test_schedule_round_trip_and_atomic_write(tmp_path):
    s = map_model(model("tiny-vila-u"), arch=load_arch(ARCHS[1]))
    data = s.to_dict()
    back = load_schedule(json.loads(json.dumps(data)))
    assert back.to_dict() == json.loads(json.dumps(data))
    path = s.write_json(tmp_path / "s.json")
    assert json.loads(path.read_text())["totals"] == json.loads(json.dumps(s.totals))
    with pytest.raises(ValueError, match="missing key 'entries'"):
        load_schedule({"model": "m", "target": "accel"})
    with pytest.raises(ValueError, match="unknown key 'bogus'"):
        load_schedule({**data, "bogus": 1})
    with pytest.raises(TypeError):
        write_json_atomic(tmp_path / "bad.json", {"x": object()})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.json"]


def test_formats():
    assert si(1234) == "1.23k" and si(999) == "999" and si(2.5e-7, "J") == "250nJ"
    assert si(None) == "-"
    graph = model("tiny-llama2-7b-duo")
    a, b = (map_model(graph, arch=load_arch(p)) for p in ARCHS)
    text = format_schedule(a)
    assert len(text.splitlines()) == len(a.entries) + 4
    cmp = format_comparison([a, b])
    assert "gemmini_like/lego_fused" in cmp
    with pytest.raises(ValueError, match="two or more"):
        format_comparison([a])


def test_map_lower_writes_programs(tmp_path):
    out = tmp_path / "progs"
    r = lego("map", "tiny-llama2-7b-duo", "--arch", ARCHS[1], "--lower", str(out))
    assert r.returncode == 0, r.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert len(manifest["steps"]) >= 4
    assert f"lowered {len(manifest['steps'])} accelerator programs" in r.stdout
    again = lego("map", "tiny-llama2-7b-duo", "--lower", str(out))
    assert again.returncode == 1 and "exists" in again.stderr


def test_map_gpu_check_runs_the_kernels():
    r = lego("map", "tiny-llama3-8b-duo", "--target", "gpu", "--check")
    assert r.returncode == 0, r.stderr
    assert "check: 17 of 17 operators passed (2 on Triton kernels" in r.stdout


@pytest.mark.parametrize("args", [("--lower", "x", "--target", "gpu"), ("--check",)])
def test_lower_and_check_need_their_target(args):
    r = lego("map", "tiny-llama3-8b-duo", *args)
    assert r.returncode == 1 and "needs --target" in r.stderr
