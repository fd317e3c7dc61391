"""mapping.plots: the utilization and roofline figures of a hand-built schedule, byte-identical
across calls, validated before anything is written, nothing left behind on error."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import matplotlib
import pytest
from matplotlib.figure import Figure

from mapping.plots import FORMATS, plot_schedule

ROOT = Path(__file__).resolve().parents[2]
SUFFIXES = ["_utilization.png", "_utilization.svg", "_roofline.png", "_roofline.svg"]


def _entry(stage, op, target, seconds, macs, dram, util, count=1):
    return {"stage": stage, "op": op, "kind": "linear", "count": count, "target": target,
            "seconds": seconds, "cycles": None, "macs": macs, "dram_bytes": dram,
            "utilization": util, "energy_pj": None, "bound": "compute"}


def _schedule():
    return {"model": "toy", "target": "accel", "arch": "lego_fused", "device": None,
            "peak_macs_per_s": 2.56e11, "dram_bytes_per_s": 1.6e10, "clock_hz": 1e9,
            "entries": [_entry("layer", "qkv", "accel", 1e-6, 200_000, 40_000, 0.78, 2),
                        _entry("layer", "rope", "host", 2e-7, 0, 1_000, 0.0, 2),
                        _entry("layer", "attn", "accel+host", 3e-6, 50_000, 90_000, 0.065, 2),
                        _entry("layer", "kv", "accel", 1e-7, 0, 4_096, 0.0, 2),
                        _entry("head", "lm_head", "accel", 4e-6, 600_000, 80_000, 0.59),
                        _entry("head", "fused", "accel", 1e-6, 1_000, 0, 0.004)],
            "totals": {"seconds": 1.9e-5, "cycles": 19_000, "macs": 1_100_000,
                       "dram_bytes": 350_000, "energy_pj": None}}


def test_writes_every_figure(tmp_path):
    paths = plot_schedule(_schedule(), tmp_path / "toy")
    assert paths == [tmp_path / f"toy{s}" for s in SUFFIXES]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths)
    for p in paths:
        data = p.read_bytes()
        if p.suffix == ".png":
            assert data.startswith(b"\x89PNG") and b"Software" not in data
        else:
            assert data.lstrip().startswith(b"<?xml") and b"dc:date" not in data
    bars = (tmp_path / "toy_utilization.svg").read_bytes()
    assert all(c in bars for c in (b"#1f77b4", b"#ff7f0e", b"#9467bd"))  # accel, host, a+h


def test_byte_identical_across_calls(tmp_path):
    first = [p.read_bytes() for p in plot_schedule(_schedule(), tmp_path / "a")]
    second = [p.read_bytes() for p in plot_schedule(_schedule(), tmp_path / "b")]
    assert first == second


def test_one_format_and_gpu_header(tmp_path):
    s = _schedule()
    s.update(target="gpu", arch=None, device="H100", clock_hz=None)
    for e in s["entries"]:
        e["target"] = "gpu"
    assert plot_schedule(s, str(tmp_path / "g"), formats=("svg",)) == [
        tmp_path / "g_utilization.svg", tmp_path / "g_roofline.svg"]
    svg = (tmp_path / "g_roofline.svg").read_bytes()
    assert b"#2ca02c" in svg and b"#1f77b4" not in svg          # colored by target


def test_caller_state_untouched(tmp_path):
    salt = matplotlib.rcParams["svg.hashsalt"]
    plot_schedule(_schedule(), tmp_path / "t")
    assert matplotlib.rcParams["svg.hashsalt"] == salt


def _without(key):
    s = _schedule()
    del s[key]
    return s


def _entry_edit(**kw):
    s = _schedule()
    s["entries"][0].update(kw)
    return s


def _entry_without(key):
    s = _schedule()
    del s["entries"][2][key]
    return s


BAD = [
    (_without("peak_macs_per_s"), "schedule: missing key 'peak_macs_per_s'"),
    (_without("entries"), "schedule: missing key 'entries'"),
    ({**_schedule(), "entries": []}, r"entries must be a non-empty list, got \[\]"),
    (_entry_without("utilization"), r"schedule entry 2 \(layer.attn\): missing key 'utilization'"),
    (_entry_without("op"), "schedule entry 2: missing key 'op'"),
    (_entry_edit(utilization=1.5), r"utilization must be a finite number in \[0, 1\], got 1.5"),
    (_entry_edit(seconds=-1.0), "seconds must be a finite number >= 0, got -1.0"),
    (_entry_edit(macs=True), "macs must be an int >= 0, got True"),
    (_entry_edit(seconds=0.0), "200000 MACs in 0 seconds"),
    (_entry_edit(target=""), "target must be a non-empty string, got ''"),
    ({**_schedule(), "dram_bytes_per_s": 0}, "dram_bytes_per_s must be a finite number > 0"),
    ([1, 2], "schedule must be a mapping, got list"),
]


@pytest.mark.parametrize("schedule,message", BAD, ids=[m[:30] for _, m in BAD])
def test_bad_input(tmp_path, schedule, message):
    with pytest.raises(ValueError, match=message):
        plot_schedule(schedule, tmp_path / "x")
    assert not list(tmp_path.iterdir())


def test_bad_destination(tmp_path):
    with pytest.raises(ValueError, match="formats must be a non-empty selection"):
        plot_schedule(_schedule(), tmp_path / "x", formats=("pdf",))
    with pytest.raises(ValueError, match="does not exist"):
        plot_schedule(_schedule(), tmp_path / "missing" / "x")
    assert not list(tmp_path.iterdir()) and FORMATS == ("png", "svg")


def test_nothing_left_on_error(tmp_path, monkeypatch):
    """A failure while saving the third file removes the two already rendered: no figure, no
    temporary file remains."""
    real, calls = Figure.savefig, []

    def failing(self, *a, **k):
        calls.append(a[0])
        if len(calls) == 3:
            raise OSError("disk full")
        return real(self, *a, **k)

    monkeypatch.setattr(Figure, "savefig", failing)
    with pytest.raises(OSError, match="disk full"):
        plot_schedule(_schedule(), tmp_path / "x")
    assert len(calls) == 3 and not list(tmp_path.iterdir())


def test_input_not_modified(tmp_path):
    s = _schedule()
    before = copy.deepcopy(s)
    plot_schedule(s, tmp_path / "x")
    assert s == before


def test_import_mapping_stays_light():
    code = ("import sys, mapping, mapping.plots\n"
            "print(sorted(m for m in ('matplotlib', 'numpy', 'torch') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
