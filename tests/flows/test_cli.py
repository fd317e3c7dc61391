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


@pytest.fixture(scope="class")
def demo(tmp_path_factory):
    """``lego demo --out DIR`` run once: (the completed process, DIR)."""
    out = tmp_path_factory.mktemp("demo")
    return lego("demo", "--out", str(out)), out


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

    def test_demo(self, demo):
        r, out = demo
        assert r.returncode == 0, r.stderr
        assert "bit-exact" in r.stdout and r.stdout.rstrip().endswith("PASS")
        assert (out / "gemm_os.v").is_file() and (out / "gemm_os.json").is_file()

    def test_demo_whole_flow(self, demo):
        """After the design: the GPU kernel, the tiny model mapped and run end to end, its
        report written to --out, every step passing."""
        r, out = demo
        steps = [line.split()[0] for line in r.stdout.splitlines()]
        assert steps == ["design", "emit", "build", "sim", "check", "gpu-ref", "map", "e2e",
                         "report", "time", "PASS"]
        lines = dict(line.split(maxsplit=1) for line in r.stdout.splitlines()[:-1])
        assert "(ok " in lines["gpu-ref"] and "tiny-llama3-8b-duo on lego_fused" in lines["map"]
        assert lines["e2e"].startswith("ref engine: 13 accelerator calls, bit-exact vs golden "
                                       "yes, cycles match True, errors within bounds True")
        stem = out / "tiny-llama3-8b-duo_e2e"
        assert lines["report"].startswith(f"{stem}.md, {stem}.html (+4 plots)")
        assert "**PASS**" in (out / f"{stem.name}.md").read_text()
        assert "<strong>PASS</strong>" in (out / f"{stem.name}.html").read_text()
        for kind in ("utilization", "roofline"):
            assert (out / f"{stem.name}_{kind}.png").is_file()


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


def test_sim_reports_utilization_of_the_mode_that_ran():
    """``lego sim``'s JSON line: the utilization of the dataflow that ran, its op's MACs over
    (array FUs x measured cycles); here Q KV (16 x 8 x 8 MACs) on the 4x4 array."""
    r = lego("sim", "examples/linear_attention_chain.yaml", "--engine", "pysim",
             "--dataflow", "qkv")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout.strip().splitlines()[-1])
    assert report["dataflow"] == "qkv" and report["cycles"] == report["expected_cycles"]
    assert report["utilization"] == round(16 * 8 * 8 / (16 * report["cycles"]), 4)
    assert 0 < report["utilization"] <= 1


def _one_error_line(r, code: int) -> None:
    assert r.returncode == code, (r.returncode, r.stderr)
    assert r.stderr.startswith("lego: error: ") and r.stderr.count("\n") == 1, r.stderr
    assert "Traceback" not in r.stderr


def _spec_file(tmp_path, edit):
    """``examples/gemm_os.yaml`` changed by ``edit`` (a function of the parsed mapping)."""
    import yaml

    with open("examples/gemm_os.yaml") as f:
        d = yaml.safe_load(f)
    edit(d)
    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump(d))
    return p


def _rename(d, key, new):
    d[new] = d.pop(key)


class TestSpecErrors:
    """Issue 12: a bad spec or option is one ``lego: error:`` line naming the spec file, the
    field (or option) and the value; usage errors exit 2, spec errors 1."""

    @pytest.mark.parametrize("args,msg", [
        (("sim", "--seed", "-1"), "argument --seed: must be an integer in 0..4294967295, "
                                  "got '-1'"),
        (("gpu-ref", "--seed", "-3"), "argument --seed: must be an integer in 0..4294967295"),
        (("sim", "--dims", "i=4,i=5"), "argument --dims: dim 'i' is given twice in 'i=4,i=5'"),
        (("sim", "--dims", "i=100000000000"),
         "argument --dims: i=100000000000: an extent must be an integer in 1..2147483647 "
         "(2**31 - 1)"),
        (("emit", "--dims", "k=0", "--out", "never"), "argument --dims: k=0: an extent must be"),
    ])
    def test_usage(self, args, msg):
        r = lego(*args)
        _one_error_line(r, 2)
        assert msg in r.stderr

    @pytest.mark.parametrize("edit,msg", [
        (lambda d: _rename(d["dataflow"], "tile", "tiles"),
         "dataflow.tiles: unknown key 'tiles'; did you mean 'tile'?"),
        (lambda d: _rename(d["dataflow"], "outer_order", "outer-order"),
         "dataflow.outer-order: unknown key 'outer-order'; did you mean 'outer_order'?"),
        (lambda d: _rename(d, "array", "arrays"), "arrays: unknown key 'arrays'; did you mean "
                                                  "'array'?"),
        (lambda d: d["dataflow"].update(outer_order=5), "dataflow.outer_order must be a list"),
        (lambda d: d["dataflow"].update(outer_order="kji"), "dataflow.outer_order must be a "
         "list, e.g. [i, j, k] (every dim once, outermost first), got 'kji'"),
        (lambda d: d["dataflow"].update(outer_order=[["i"], "j", "k"]),
         "dataflow.outer_order[0] must be a dim name, got ['i']"),
        (lambda d: d["op"]["tensors"]["A"].update(index=["i", "k"]),
         "op.tensors.A.index must be a string"),
        (lambda d: d["op"]["tensors"].update(A={"access": [[1, 0, 0], [0, 0, 1]], "offset": 0,
                                                "role": "input", "type": "int8"}),
         "op.tensors.A.offset must be a list of 2 integers (one per access row), got 0"),
        (lambda d: d["op"]["tensors"]["C"].update(type="uint32"),
         "op.tensors.C.type: the output C is unsigned (uint32) but its inputs are A int8 and B "
         "int8"),
        (lambda d: d["op"]["tensors"]["C"].update(index="i + 1, j"),
         "op.tensors.C: output index 'i + 1, j' is not supported: axis 0 (i + 1) has an offset"),
        (lambda d: d["op"]["tensors"]["C"].update(index="2*i, j"),
         "op.tensors.C: output index '2*i, j' is not supported"),
        (lambda d: d["op"]["tensors"]["C"].update(type="int12"),
         "op.tensors.C.type: int12 is too narrow"),
    ])
    def test_spec_checks(self, tmp_path, edit, msg):
        p = _spec_file(tmp_path, edit)
        r = lego("emit", str(p), "--out", str(tmp_path / "o"))
        _one_error_line(r, 1)
        assert r.stderr.startswith(f"lego: error: {p}: {msg}"), r.stderr
        assert not (tmp_path / "o").exists()

    @pytest.mark.parametrize("edit,msg", [
        (lambda d: d["dataflow"].update(time="i + j"), "dataflow: dim 'k' has tile 16 but"),
        (lambda d: d.update(array=[8, 4]) or d["dataflow"].update(space=["2*i", "j"]),
         "dataflow: the space-time map has determinant 2"),
        (lambda d: d.update(array=[2, 2]), "dataflow.space[0] reaches FU coordinate 3"),
    ])
    def test_planning_errors_name_the_file(self, tmp_path, edit, msg):
        p = _spec_file(tmp_path, edit)
        r = lego("emit", str(p), "--out", str(tmp_path / "o"))
        _one_error_line(r, 1)
        assert r.stderr.startswith(f"lego: error: {p}: {msg}"), r.stderr

    def test_fusion_error_names_the_file(self, tmp_path):
        import yaml

        with open("examples/linear_attention_chain.yaml") as f:
            d = yaml.safe_load(f)
        d["dataflows"][1]["op"]["tensors"]["Q"]["type"] = "int4"
        p = tmp_path / "chain.yaml"
        p.write_text(yaml.safe_dump(d))
        r = lego("emit", str(p), "--out", str(tmp_path / "o"))
        _one_error_line(r, 1)
        assert r.stderr.startswith(f"lego: error: {p}: dataflows 'kv' and 'qkv' cannot share")

    def test_malformed_yaml_one_line(self, tmp_path):
        p = tmp_path / "s.yaml"
        p.write_text("name: x\nop: {dims: [\n")
        r = lego("sim", str(p))
        _one_error_line(r, 1)
        assert r.stderr.startswith(f"lego: error: {p}:3:1: not valid YAML: ")

    def test_tensor_too_large(self):
        r = lego("sim", "--dims", "i=134217728")
        _one_error_line(r, 1)
        assert ("--dims i=134217728: op.tensors.A: 134217728 x 16 = 2147483648 elements, more "
                "than the maximum 16777216 (2**24) per tensor") in r.stderr

    def test_dims_shrink_tiles(self, tmp_path):
        r = lego("emit", "examples/gemm_os.yaml", "--dims", "i=1,j=1,k=1", "--out",
                 str(tmp_path))
        assert r.returncode == 0, r.stderr
        report = json.loads((tmp_path / "gemm_os.json").read_text())
        assert report["padded"] == report["problem"] == {"i": 1, "j": 1, "k": 1}
        assert report["fus"]["used"] == 1


class TestArchCommands:
    """``lego arch`` and ``lego run`` (reference-machine engine) as a user runs them."""

    def test_arch_summary(self):
        r = lego("arch", "examples/arch/lego_fused.yaml")
        assert r.returncode == 0, r.stderr
        assert r.stdout.startswith("lego_fused: 16x16 array (256 MACs), int8 x int8 -> int32")
        assert "dataflow    spatial_reduction: j<=16, k<=16 on the array" in r.stdout

    @pytest.mark.parametrize("args", [("--gemm", "5,7,3"),
                                      ("--gemm", "17,9,33", "--transpose-a", "--transpose-b",
                                       "--dataflow", "input_stationary"),
                                      ("--conv", "3,6,7,5,3,2")])
    def test_run_bit_exact(self, args):
        r = lego("run", "examples/arch/lego_fused.yaml", "--engine", "ref", *args)
        assert r.returncode == 0, r.stderr
        out = json.loads(r.stdout)
        assert out["bit_exact"] is True and out["engine"] == "ref"
        assert out["roofline_cycles"] >= out["macs"] / 256 and out["dram_bytes"] > 0
        assert out["cycles"] is None and out["model_cycles"] >= out["roofline_cycles"]
        if "--dataflow" in args:
            assert out["dataflow"] == "input_stationary"

    def test_gemmini_pads(self):
        out = json.loads(lego("run", "examples/arch/gemmini_like.yaml", "--engine", "ref",
                              "--gemm", "1,16,16").stdout)
        assert out["macs"] == 256 and out["padded_macs"] == 16 * 16 * 16

    @pytest.mark.parametrize("args, code, message", [
        (("--gemm", "5,7"), 2, "expected 3 positive integers separated by commas, got '5,7'"),
        (("--gemm", "5,0,3"), 2, "expected 3 positive integers"),
        (("--engine", "icarus", "--gemm", "1,1,1"), 2, "invalid choice: 'icarus'"),
        (("--gemm", "1,1,1", "--dataflow", "input_stationay"), 1,
         "has no dataflow 'input_stationay'"),
        (("--conv", "1,3,3,1,1,1", "--transpose-a"), 1,
         "--transpose-a/--transpose-b go with --gemm"),
        (("--conv", "1,2,2,1,3,3"), 1, "a 3x3 kernel does not fit a 2x2 image"),
    ])
    def test_run_errors(self, args, code, message):
        r = lego("run", "examples/arch/lego_fused.yaml", "--engine", "ref", *args)
        _one_error_line(r, code)
        assert message in r.stderr

    def test_bad_arch_file_named(self, tmp_path):
        p = tmp_path / "a.yaml"
        p.write_text("name: a\narray: [16, 16]\n")
        r = lego("run", str(p), "--gemm", "1,1,1")
        _one_error_line(r, 1)
        assert r.stderr.startswith(f"lego: error: {p}: architecture: missing 'types'")


@pytest.fixture(scope="module")
def tiny_yaml(tmp_path_factory):
    import yaml

    from tests.hw.accel_cases import tiny_arch_dict

    p = tmp_path_factory.mktemp("arch") / "tiny.yaml"
    p.write_text(yaml.safe_dump(tiny_arch_dict("int8")))
    return p


class TestAcceleratorRuns:
    """``lego arch emit`` and ``lego run`` on the generated accelerator's RTL."""

    @pytest.mark.parametrize("engine", ["fast", "cocotb"])
    @pytest.mark.parametrize("layer", [("--gemm", "6,9,5", "--dataflow", "os"),
                                       ("--gemm", "1,7,9", "--transpose-b"),
                                       ("--conv", "2,5,6,3,2,2", "--dataflow", "is_")])
    def test_rtl_bit_exact_and_cycles_as_modelled(self, tiny_yaml, engine, layer):
        r = lego("run", str(tiny_yaml), "--engine", engine, *layer)
        assert r.returncode == 0, r.stderr
        out = json.loads(r.stdout)
        assert out["bit_exact"] is True and out["engine"] == engine
        assert out["cycles"] == out["model_cycles"] >= out["roofline_cycles"]
        assert 0 < out["utilization"] <= out["utilization_bound"] <= 1

    def test_shipped_architecture_on_the_fast_engine(self):
        r = lego("run", "examples/arch/lego_fused.yaml", "--gemm", "40,33,70")
        assert r.returncode == 0, r.stderr
        out = json.loads(r.stdout)
        assert out["bit_exact"] is True and out["engine"] == "fast"
        assert out["cycles"] == out["model_cycles"]

    def test_arch_emit(self, tiny_yaml, tmp_path):
        r = lego("arch", "emit", str(tiny_yaml), "--out", str(tmp_path / "rtl"))
        assert r.returncode == 0, r.stderr
        out = json.loads(r.stdout)
        text = (tmp_path / "rtl" / "tiny_int8_accel.v").read_text()
        assert out["verilog"] == str(tmp_path / "rtl" / "tiny_int8_accel.v")
        assert out["lines"] == text.count("\n") and "module tiny_int8_accel(" in text

    @pytest.mark.parametrize("words, message", [
        (("emit",), "expected 'lego arch ARCH.yaml' or 'lego arch emit ARCH.yaml', got 'emit'"),
        (("show", "a.yaml"), "got 'show a.yaml'"),
    ])
    def test_arch_usage_errors(self, words, message):
        r = lego("arch", *words)
        _one_error_line(r, 1)
        assert message in r.stderr

    def test_emit_names_unsupported_architecture(self, tmp_path):
        import yaml

        from tests.hw.accel_cases import tiny_arch_dict

        d = tiny_arch_dict("int8")
        d["dram"]["bytes_per_cycle"] = 8
        p = tmp_path / "wide.yaml"
        p.write_text(yaml.safe_dump(d))
        r = lego("arch", "emit", str(p), "--out", str(tmp_path / "o"))
        _one_error_line(r, 1)
        assert f"{p}: the accelerator's DRAM beat is one scratchpad row" in r.stderr
        assert not (tmp_path / "o").exists()


def test_run_on_an_architecture_without_an_accelerator(tmp_path):
    """A non-square array: the reference machine runs it, the RTL engines say why not."""
    import yaml

    from tests.hw.accel_cases import tiny_arch_dict

    d = tiny_arch_dict("int8")
    d.update(array=[4, 8], scratchpad={"capacity_bytes": 1024, "banks": 4, "row_bytes": 8},
             accumulator={"capacity_bytes": 2048, "banks": 2, "row_bytes": 32},
             dataflows=[{"name": "os", "space": ["i", "j"], "time": "i + j + k"}])
    d["dram"]["bytes_per_cycle"] = 8
    p = tmp_path / "wide.yaml"
    p.write_text(yaml.safe_dump(d))
    r = lego("run", str(p), "--gemm", "3,5,7")
    _one_error_line(r, 1)
    assert "square arrays, got 4x8 (--engine ref runs the program" in r.stderr
    r = lego("run", str(p), "--gemm", "3,5,7", "--engine", "ref")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["bit_exact"] is True and out["model_cycles"] is None and out["utilization"] is None


class TestWorkloadRuns:
    """``lego run --workload``: whole heads through the units on the reference machine."""

    FUSED = "examples/arch/lego_fused.yaml"

    def test_linear_attention_head(self):
        r = lego("run", self.FUSED, "--workload", "linear-attention", "--shape", "40,32,16")
        assert r.returncode == 0, r.stderr
        out = json.loads(r.stdout)
        assert out["bit_exact"] is True and out["engine"] == "ref" and out["cycles"] is None
        assert out["layer"] == "linear-attention 40x32x16"
        assert out["unit_rows"]["normalizer"] == 40 and out["macs"] > 0
        assert out["model_cycles"] > 0 and 0 < out["utilization"] < 1

    @pytest.mark.parametrize("args", [
        ("--workload", "linear-attention", "--shape", "21,6,5"),
        ("--workload", "svdquant", "--shape", "6,32,5,4"),
        ("--workload", "duo-attention", "--shape", "2,14,4", "--window", "2,3", "--chunk", "4",
         "--decode", "3"),
    ])
    def test_workloads_on_the_rtl(self, tmp_path, args):
        """Each workload runs on the generated accelerator (fast engine): the same DRAM as
        the reference machine, golden's outputs, the cycles the model predicts."""
        import yaml

        from tests.hw.accel_cases import tiny_arch_dict

        p = tmp_path / "tiny_units.yaml"
        p.write_text(yaml.safe_dump(tiny_arch_dict("units")))
        r = lego("run", str(p), *args, "--engine", "fast")
        assert r.returncode == 0, r.stderr
        out = json.loads(r.stdout)
        assert out["bit_exact"] is True and out["engine"] == "fast"
        assert out["cycles"] == out["model_cycles"] > 0

    def test_svdquant_layer(self):
        r = lego("run", self.FUSED, "--workload", "svdquant", "--shape", "4,128,20,8")
        assert r.returncode == 0, r.stderr
        out = json.loads(r.stdout)
        assert out["bit_exact"] is True and out["layer"] == "svdquant 4x128x20 rank 8"
        assert out["macs"] == 4 * 128 * 20 + 4 * 128 * 8 + 4 * 8 * 20
        assert set(out["unit_rows"]) == {"dequant", "requant"}
        assert out["model_cycles"] > 0 and out["cycles"] is None

    def test_streaming_duo_head_prefill_and_decode(self):
        r = lego("run", self.FUSED, "--workload", "duo-attention", "--shape", "2,30,32",
                 "--window", "4,8", "--chunk", "8", "--decode", "3")
        assert r.returncode == 0, r.stderr
        out = json.loads(r.stdout)
        assert out["bit_exact"] is True
        assert out["layer"] == ("duo-attention streaming 4+8 2x30x32 (27 prefill in chunks of "
                                "8, 3 decode)")
        assert set(out["unit_rows"]) == {"normalizer", "requant", "softmax"}

    @pytest.mark.parametrize("args, message", [
        (("--workload", "duo-attention", "--window", "4,0"),
         "--window is SINK,RECENT with RECENT >= 1"),
        (("--workload", "linear-attention", "--shape", "4,8"), "--shape for linear-attention "
                                                              "is N,D,DV"),
        (("--workload", "duo-attention", "--shape", "1,8,8", "--decode", "8"),
         "--decode 8 must leave a prompt"),
        (("--gemm", "4,4,4", "--shape", "4,4,4"), "--shape and --window go with --workload"),
        (("--workload", "linear-attention", "--dataflow", "output_stationary"),
         "--dataflow and --transpose-a/-b go with --gemm or --conv"),
    ])
    def test_errors(self, args, message):
        r = lego("run", self.FUSED, *args)
        _one_error_line(r, 1)
        assert message in r.stderr

    def test_architecture_without_units(self):
        r = lego("run", "examples/arch/gemmini_like.yaml", "--workload", "linear-attention")
        _one_error_line(r, 1)
        assert "has no requant, normalizer unit(s)" in r.stderr


class TestModels:
    def test_lists_the_zoo_one_model_per_line(self):
        from mapping.zoo import MODELS

        r = lego("models")
        assert r.returncode == 0, r.stderr
        names = [line.split()[0] for line in r.stdout.splitlines()]
        assert names == list(MODELS)
        assert {"flux1-dev", "tiny-flux1-dev", "llama3-8b-duo", "vila-u"} <= set(names)

    def test_json_lines_carry_the_totals(self):
        from mapping.zoo import model

        r = lego("models", "--json")
        assert r.returncode == 0, r.stderr
        rows = [json.loads(line) for line in r.stdout.splitlines()]
        flux = next(row for row in rows if row["model"] == "flux1-dev")
        assert flux["macs"] == model("flux1-dev").totals().macs > 0
        assert flux["weight_params"] > 11_000_000_000
