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
                                      ("sim", "--seed", "x"), ("sim", "--dims", "i:3"),
                                      ("sim", "--engine", "icarus")])
    def test_bad_usage_one_line(self, args):
        r = lego(*args)
        assert r.returncode == 2
        assert r.stderr.count("\n") == 1 and r.stderr.startswith("lego: error:")
        assert "Traceback" not in r.stderr

    def test_emit_default(self, tmp_path):
        r = lego("emit", "--out", str(tmp_path / "o"))
        assert r.returncode == 0, r.stderr
        first = (tmp_path / "o" / "gemm_os.v").read_text()
        assert "module gemm_os(" in first
        report = json.loads((tmp_path / "o" / "gemm_os.json").read_text())
        assert report["netlist"]["register_bits"] == report["registers"]["total_bits"]
        assert report["cycles"]["per_problem"] > 0 and report["fus"]["used"] == 16
        assert lego("emit", "--out", str(tmp_path / "o")).returncode == 0
        assert (tmp_path / "o" / "gemm_os.v").read_text() == first   # byte-identical

    def test_default_is_the_example(self):
        import yaml

        from flows.default_design import DEFAULT_SPEC_YAML

        with open("examples/gemm_os.yaml") as f:
            assert yaml.safe_load(f) == yaml.safe_load(DEFAULT_SPEC_YAML)

    def test_emit_spec_with_dims(self, tmp_path):
        r = lego("emit", "examples/gemm_ws.yaml", "--dims", "i=5,k=7", "--out", str(tmp_path))
        assert r.returncode == 0, r.stderr
        report = json.loads((tmp_path / "gemm_ws.json").read_text())
        assert report["problem"] == {"i": 5, "j": 8, "k": 7}
        assert report["padded"]["k"] == 8 and report["tensors"]["B"]["reuse"] == ["stationary"]

    @pytest.mark.parametrize("spec_text,msg", [
        ("name: x\narray: [2, 2]\n", "spec: missing 'op'"),
        ("op: [", "not valid YAML"),
    ])
    def test_bad_spec(self, tmp_path, spec_text, msg):
        p = tmp_path / "s.yaml"
        p.write_text(spec_text)
        r = lego("emit", str(p), "--out", str(tmp_path / "o"))
        assert r.returncode == 1 and msg in r.stderr and "Traceback" not in r.stderr
        assert not (tmp_path / "o").exists()

    def test_bad_dataflow_rejected(self, tmp_path):
        import yaml

        d = yaml.safe_load(open("examples/gemm_os.yaml"))
        d["dataflow"]["time"] = "i + j"
        p = tmp_path / "s.yaml"
        p.write_text(yaml.safe_dump(d))
        r = lego("sim", str(p), "--engine", "pysim")
        assert r.returncode == 1
        assert "would share an FU and a cycle" in r.stderr and "Traceback" not in r.stderr

    def test_sim_fused_dataflow(self):
        r = lego("sim", "examples/gemm_fused.yaml", "--engine", "pysim", "--dataflow",
                 "weight_stationary")
        assert r.returncode == 0, r.stderr
        report = json.loads(r.stdout)
        assert report["dataflow"] == "weight_stationary" and report["bit_exact"]
        r = lego("sim", "examples/gemm_fused.yaml", "--engine", "pysim", "--dataflow", "x")
        assert r.returncode == 1 and "--dataflow 'x' is not in the spec" in r.stderr

    def test_backend_options(self, tmp_path):
        r = lego("sim", "examples/gemm_fused.yaml", "--engine", "pysim", "--stage-budget",
                 "1.5", "--max-fanout", "4", "--dataflow", "input_stationary")
        assert r.returncode == 0, r.stderr
        report = json.loads(r.stdout)
        assert report["bit_exact"] and report["cycles"] == report["expected_cycles"]
        r = lego("emit", "examples/gemm_ws.yaml", "--stage-budget", "1", "--out", str(tmp_path))
        assert r.returncode == 0, r.stderr
        figures = json.loads((tmp_path / "gemm_ws.json").read_text())
        assert figures["backend"]["passes"]["pipelined"]["latency"] == \
            figures["cycles"]["datapath_latency"] > 0
        assert figures["registers"]["by_purpose"]["pipeline"] > 0
        for args, msg in [(["--stage-budget", "0"], "must be a positive number, got '0'"),
                          (["--max-fanout", "1"], "max_fanout must be an int >= 2"),
                          (["examples/gemm_fused.yaml", "--stage-budget", "1"],
                           "infeasible stage budget")]:
            r = lego("emit", *args, "--out", str(tmp_path / "x"))
            assert r.returncode in (1, 2) and msg in r.stderr and "Traceback" not in r.stderr
            assert not (tmp_path / "x").exists()        # nothing half-written

    def test_sim_spec_pysim(self):
        r = lego("sim", "examples/conv2d.yaml", "--engine", "pysim", "--dims", "y=2")
        assert r.returncode == 0, r.stderr
        report = json.loads(r.stdout)
        assert report["bit_exact"] and report["cycles"] == report["expected_cycles"]

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
        # 4 tiles of 16 cycles, overlapped; the last drains its 4x4 skew (plan_array's model);
        # + 1: write-back reads the last accumulator register a cycle after its last MAC
        assert report["cycles"] == report["expected_cycles"] == 3 * 16 + 24 + 1
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
        assert (tmp_path / "gemm_os.v").is_file() and (tmp_path / "gemm_os.json").is_file()


class TestGpuRef:
    def test_linear_attention(self):
        r = lego("gpu-ref", "--workload", "linear-attention", "--shape", "1,1,64,32")
        assert r.returncode == 0, r.stderr
        result = json.loads(r.stdout.strip().splitlines()[-1])
        assert result["max_rel_err"] < 1e-4
        if result["device"].startswith("interpreter"):
            assert "roofline" in r.stdout and "unfused moves" in r.stdout
        assert result["roofline"][0]["unfused_over_fused_traffic"] > 1.5

    def test_bad_shape(self):
        r = lego("gpu-ref", "--workload", "svdquant", "--shape", "4,4")
        assert r.returncode == 1 and "--shape for svdquant is tokens,N,K" in r.stderr
        r = lego("gpu-ref", "--workload", "svdquant", "--shape", "4,x")
        assert r.returncode == 2 and "expected integers" in r.stderr
