"""Generated arrays in Amaranth's simulator against golden (no Verilator build needed)."""

import hashlib
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hw.check.report import check_against_netlist, design_report
from hw.front.spec import SpecError, load_spec, spec_from_dict
from hw.rtl.emit import emit_design
from sim.design import simulate_design

EXAMPLES = ["gemm_os", "gemm_ws", "gemm_is", "gemm_multicast", "batched_gemm", "conv2d"]


class TestGeneratedArray:
    @pytest.mark.parametrize("name", EXAMPLES)
    def test_examples_bit_exact(self, name):
        spec = load_spec(f"examples/{name}.yaml")
        run = simulate_design([spec], seed=11, engine="pysim")
        np.testing.assert_array_equal(run.output, run.expected)
        assert run.cycles == run.expected_cycles

    def test_extremes(self):
        spec = load_spec("examples/gemm_ws.yaml")
        ops = {"A": np.full((8, 8), -128), "B": np.full((8, 8), -128)}
        run = simulate_design([spec], ops, engine="pysim")
        assert (run.output == 8 * 16384).all() and run.bit_exact

    def test_operand_errors(self):
        spec = load_spec("examples/gemm_os.yaml")
        with pytest.raises(ValueError, match=r"operand A must have shape \(8, 16\)"):
            simulate_design([spec], {"A": np.zeros((8, 8), int), "B": np.zeros((16, 8), int)},
                            engine="pysim")
        with pytest.raises(ValueError, match="operand B holds 200, outside int8"):
            simulate_design([spec], {"A": np.zeros((8, 16), int), "B": np.full((16, 8), 200)},
                            engine="pysim")
        with pytest.raises(ValueError, match="operand 'B' missing"):
            simulate_design([spec], {"A": np.zeros((8, 16), int)}, engine="pysim")


class TestEmission:
    def test_deterministic_across_processes(self):
        code = ("import hashlib; from hw.front.spec import load_spec; "
                "from hw.rtl.emit import emit_design;"
                "print(hashlib.sha256(emit_design([load_spec('examples/conv2d.yaml')]).verilog"
                ".encode()).hexdigest())")
        runs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                               check=True).stdout.strip() for _ in range(2)}
        here = hashlib.sha256(emit_design([load_spec("examples/conv2d.yaml")]).verilog.encode())
        assert runs == {here.hexdigest()}

    def test_no_source_paths_and_reset_free(self):
        _, _, v = emit_design([load_spec("examples/gemm_os.yaml")])
        assert ".py:" not in v and "input clk;" in v and " rst" not in v

    @pytest.mark.parametrize("name", EXAMPLES)
    def test_report_matches_netlist(self, name):
        (plan,), top, v = emit_design([load_spec(f"examples/{name}.yaml")])
        report = design_report(top)
        net = check_against_netlist(report, v)
        assert net["memories"] == report["banks"]["count"] == len(plan.banks)
        # an accumulating FU's register is read for write-back one cycle after its last MAC
        stationary = plan.output.vector is not None and plan.output.vector.kind == "stationary"
        assert top.write_shift == int(stationary) == report["cycles"]["accumulator_read"]
        assert report["cycles"]["per_problem"] == plan.run_cycles + top.write_shift
        assert net["ports"]["host_addr"] == ("input", top.addr_bits)


_DIMS = ("i", "j", "k")


@st.composite
def _gemm_designs(draw):
    """GEMM with a random space-time map from a family: space = two distinct dims (the second
    optionally skewed by the first), time = a unimodular skew over all three."""
    p, q = draw(st.permutations(_DIMS))[:2]
    r = next(d for d in _DIMS if d not in (p, q))
    skew = draw(st.sampled_from([0, 1]))
    coef = {d: draw(st.sampled_from([-1, 0, 1, 2])) for d in (p, q)}
    coef[r] = draw(st.sampled_from([1, -1]))        # +-1 on the non-space dim: unimodular
    rows, cols = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    tp = draw(st.integers(1, rows))
    tq = draw(st.integers(1, max(1, cols - skew * (tp - 1))))
    ext = {d: draw(st.integers(1, 6)) for d in _DIMS}
    tile = {p: tp, q: tq, r: draw(st.integers(1, 6))}
    types = draw(st.sampled_from([("int4", "int4"), ("int8", "int8"), ("uint4", "int8")]))
    time = " + ".join(f"{c}*{d}" for d, c in coef.items() if c).replace("+ -", "- ")
    return {
        "name": "prop",
        "op": {"dims": ext, "tensors": {
            "A": {"index": "i, k", "role": "input", "type": types[0]},
            "B": {"index": "k, j", "role": "input", "type": types[1]},
            "C": {"index": "i, j", "role": "accumulate", "type": "int32"}}},
        "array": [rows, cols],
        "dataflow": {"space": [p, f"{q} + {p}" if skew else q], "time": time, "tile": tile,
                     "outer_order": list(draw(st.permutations(_DIMS)))},
    }


class TestPropertyRandomDataflows:
    @settings(max_examples=12, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow])
    @given(_gemm_designs(), st.integers(0, 2**16))
    def test_bit_exact_or_clear_rejection(self, design, seed):
        try:
            spec = spec_from_dict(design)
            run = simulate_design([spec], seed=seed, engine="pysim")
        except SpecError as exc:
            assert str(exc) and "\n" not in str(exc)
            return
        np.testing.assert_array_equal(run.output, run.expected)
        assert run.cycles == run.expected_cycles


class TestFuStyles:
    def test_instance_and_inline_agree_on_registers(self):
        from hw.front.plan import plan_array
        from hw.rtl.emit import to_verilog
        from hw.rtl.generate import GeneratedArray

        plan = plan_array(load_spec("examples/gemm_ws.yaml"))
        counts = {}
        for style in GeneratedArray.FU_STYLES:
            top = GeneratedArray([plan], fu_style=style)
            to_verilog(top, "ws")
            counts[style] = dict(top.register_bits)
        assert counts["instance"] == counts["inline"]

    def test_bad_style(self):
        from hw.front.plan import plan_array
        from hw.rtl.generate import GeneratedArray

        with pytest.raises(ValueError, match="fu_style must be one of"):
            GeneratedArray([plan_array(load_spec("examples/gemm_os.yaml"))], fu_style="flat")

    def test_a_design_is_a_sequence_of_dataflows(self):
        """One plan or several: always a sequence (a bare plan or spec is a clear error)."""
        from hw.cost import design_cost
        from hw.front.plan import plan_array
        from hw.rtl.generate import GeneratedArray

        spec = load_spec("examples/gemm_os.yaml")
        plan = plan_array(spec)
        for call in (lambda: GeneratedArray(plan), lambda: design_cost(plan),
                     lambda: simulate_design(spec, engine="pysim")):
            with pytest.raises(TypeError, match=r"sequence of (plans|specs): pass \[(plan|spec)\]"):
                call()
        with pytest.raises(ValueError, match="at least one spec"):
            simulate_design([], engine="pysim")


class TestFusion:
    @pytest.mark.parametrize("mode", [0, 1, 2])
    def test_every_mode_bit_exact(self, mode):
        from hw.front.spec import load_specs

        specs = load_specs("examples/gemm_fused.yaml")
        run = simulate_design(specs, seed=5 + mode, engine="pysim", mode=mode)
        np.testing.assert_array_equal(run.output, run.expected)
        assert run.cycles == run.expected_cycles

    def test_shares_registers_and_banks(self):
        from hw.front.spec import load_specs

        specs = load_specs("examples/gemm_fused.yaml")
        _, fused, v = emit_design(specs)
        report = design_report(fused)
        check_against_netlist(report, v)
        single_tops = [emit_design([s]).top for s in specs]
        singles = [design_report(t) for t in single_tops]
        total = report["registers"]["total_bits"]
        assert total < sum(s["registers"]["total_bits"] for s in singles)
        # OS forwards A right and B down, WS forwards A right, IS forwards B down: all shared
        fwd = [s["registers"]["by_purpose"].get("operand forwarding", 0) for s in singles]
        assert report["registers"]["by_purpose"]["operand forwarding"] == max(fwd)
        # the k-th bank of each tensor is one memory: as many as the most any dataflow needs
        assert report["banks"]["count"] == sum(
            max(s["banks"]["per_tensor"][t] for s in singles) for t in "ABC")
        # fused FUs are combinational (no write-back shift): each mode runs its plan's cycles
        assert fused.write_shift == 0
        assert [m["cycles_per_problem"] for m in report["modes"]] == [
            p.run_cycles for p in fused.plans] == [
            s["cycles"]["per_problem"] - s_top.write_shift
            for s, s_top in zip(singles, single_tops, strict=True)]

    def test_different_ops_chain(self):
        """Linear attention on one array: mode 0 K^T V, host requantization, mode 1 Q (K^T V),
        against numpy end to end."""
        from hw.front.spec import load_specs

        specs = load_specs("examples/linear_attention_chain.yaml")
        assert [s.op.inputs[0].name for s in specs] == ["K", "Q"]
        rng = np.random.default_rng(4)
        k, v, q = (rng.integers(-128, 128, size=(16, 8)) for _ in range(3))
        kv = simulate_design(specs, {"K": k, "V": v}, engine="pysim", mode=0)
        assert kv.bit_exact
        np.testing.assert_array_equal(kv.output, k.T @ v)
        kv8 = np.clip(kv.output >> 10, -128, 127)            # the host's requantization
        out = simulate_design(specs, {"Q": q, "KV": kv8}, engine="pysim", mode=1)
        np.testing.assert_array_equal(out.output, q @ kv8)
        assert out.cycles == out.expected_cycles

    def test_different_ops_spec_errors(self):
        from hw.front.spec import specs_from_dict

        base = {"name": "x", "array": [2, 2], "dataflows": [
            {"name": "a", "space": ["i", "j"], "time": "i + j + k"}]}
        with pytest.raises(SpecError, match=r"dataflows\[0\]: .*op"):
            specs_from_dict(base)                   # no op anywhere

    def test_incompatible_dataflows(self):
        import yaml

        from hw.front.fusion import FusionError
        from hw.front.plan import plan_array
        from hw.rtl.generate import GeneratedArray

        os_spec = load_spec("examples/gemm_os.yaml")
        with open("examples/gemm_os.yaml") as f:
            source = yaml.safe_load(f)
        small = spec_from_dict({**source, "array": [2, 2],
                                "dataflow": {**source["dataflow"],
                                             "tile": {"i": 2, "j": 2, "k": 16}}})
        with pytest.raises(FusionError, match=r"cannot share an array: arrays \(4, 4\) and"):
            GeneratedArray([plan_array(os_spec), plan_array(small)])
        int4 = spec_from_dict({**source, "op": {**source["op"], "tensors": {
            **source["op"]["tensors"],
            "A": {"index": "i, k", "role": "input", "type": "int4"}}}})
        with pytest.raises(FusionError,
                           match=r"their first inputs A \(int8\) and A \(int4\) differ in type"):
            GeneratedArray([plan_array(os_spec), plan_array(int4)])
