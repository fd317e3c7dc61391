"""The ``lego`` command line, run as a user runs it (a subprocess)."""

import json
import subprocess
import sys

import pytest


def lego(*args, env=None):
    import os

    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "flows.cli", *args], capture_output=True,
                          text=True, env=full_env, timeout=600)


class TestCli:
    def test_help(self):
        r = lego("--help")
        assert r.returncode == 0
        for cmd in ("emit", "sim", "demo"):
            assert cmd in r.stdout

    def test_version(self):
        r = lego("--version")
        assert r.returncode == 0 and r.stdout.startswith("lego 0.")

    @pytest.mark.parametrize("args", [("bogus",), ("emit", "--bogus", "x"), ("emit",),
                                      ("sim", "--seed", "x")])
    def test_bad_usage_one_line(self, args):
        r = lego(*args)
        assert r.returncode == 2
        assert r.stderr.count("\n") == 1 and r.stderr.startswith("lego: error:")
        assert "Traceback" not in r.stderr

    def test_emit(self, tmp_path):
        r = lego("emit", "--out", str(tmp_path / "o"))
        assert r.returncode == 0, r.stderr
        first = (tmp_path / "o" / "mac_array.v").read_text()
        assert "module mac_array(" in first
        assert lego("emit", "--out", str(tmp_path / "o")).returncode == 0
        assert (tmp_path / "o" / "mac_array.v").read_text() == first   # byte-identical

    def test_emit_unwritable(self, tmp_path):
        blocker = tmp_path / "file"
        blocker.write_text("")
        for out in (blocker, blocker / "sub"):
            r = lego("emit", "--out", str(out))
            assert r.returncode == 1
            assert r.stderr.startswith("lego: error:") and "Traceback" not in r.stderr
            assert str(blocker) in r.stderr
        assert blocker.read_text() == ""

    def test_sim_reports_json(self):
        r = lego("sim", "--seed", "5")
        assert r.returncode == 0, r.stderr
        report = json.loads(r.stdout)
        assert report["bit_exact"] is True
        assert report["cycles"] == report["expected_cycles"] == 64 + 4 + 4 - 2 + 2
        assert report["sim_cycles_per_s"] > 0

    def test_missing_verilator(self, tmp_path):
        r = lego("sim", env={"LEGO_VERILATOR_BIN_DIR": str(tmp_path)})
        assert r.returncode == 1
        assert r.stderr.strip() == (f"lego: error: Verilator not found: "
                                    f"LEGO_VERILATOR_BIN_DIR={tmp_path} has no 'verilator'")

    def test_demo(self, tmp_path):
        r = lego("demo", "--out", str(tmp_path))
        assert r.returncode == 0, r.stderr
        assert "bit-exact" in r.stdout and r.stdout.rstrip().endswith("PASS")
        assert (tmp_path / "mac_array.v").is_file()
