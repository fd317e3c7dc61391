import pytest

from hw.front.plan import plan_array
from hw.front.spec import load_spec, load_specs
from hw.ir.graph_sim import check_graph
from hw.ir.lower import lower_array
from hw.ir.pipeline import asap_pipeline, insert_pipeline
from hw.rtl.emit import to_verilog
from hw.rtl.generate import GeneratedArray

EXAMPLES = ["gemm_os", "gemm_ws", "gemm_is", "gemm_multicast", "conv2d"]


def _fused():
    return [plan_array(s) for s in load_specs("examples/gemm_fused.yaml")]


class TestLowerArray:
    @pytest.mark.parametrize("name", EXAMPLES)
    def test_registers_match_the_generated_rtl(self, name):
        """Forwarding, partial-sum, accumulator and write-back value registers are the ones the
        directly generated RTL has (one write-back value register per output bank)."""
        plan = plan_array(load_spec(f"examples/{name}.yaml"))
        lowered = lower_array([plan])
        top = GeneratedArray([plan])
        to_verilog(top, name)
        rtl = top.register_bits
        expected = (rtl["operand forwarding"] + rtl["partial-sum forwarding"]
                    + rtl["accumulators"] + len(lowered.outputs) * plan.output.tensor.dtype.bits)
        assert lowered.graph.register_bits() == expected

    def test_structure(self):
        plan = plan_array(load_spec("examples/gemm_os.yaml"))
        lowered = lower_array([plan])
        graph = lowered.graph
        check_graph(graph)                          # every node has its kind's operands
        kinds = [n.kind for n in graph.nodes.values()]
        assert kinds.count("mul") == kinds.count("add") == len(plan.fus) == 16
        assert len(lowered.reads) == 8 and kinds.count("output") == len(lowered.outputs) == 4
        assert sorted({w[0] for w in lowered.controls.values()}) == ["enable", "first", "write"]
        # bank read 0.5 + multiply 1.0 + add 0.5, then a balanced tree of write selects (0.25)
        out = plan.output.tensor.name
        writers = max(len(b.members) for b in plan.banks if b.tensor == out)
        assert writers >= 4                         # 16 writers share 4 banks
        levels = (writers - 1).bit_length()
        assert graph.longest_path()[0] == pytest.approx(2.0 + 0.25 * levels)

    def test_fused_muxes_by_mode(self):
        plans = _fused()
        lowered = lower_array(plans)
        modes = {w[1] for w in lowered.controls.values() if w[0] == "mode"}
        assert len(modes) >= 2 and modes <= {0, 1, 2}   # a mux per further source
        single = max(len(lower_array([p]).graph.nodes) for p in plans)
        assert single < len(lowered.graph.nodes) < 3 * single

    def test_no_plans(self):
        with pytest.raises(ValueError, match="at least one plan"):
            lower_array([])

    @pytest.mark.parametrize("name", ["gemm_os", "gemm_ws"])
    def test_lp_never_worse_than_asap(self, name):
        graph = lower_array([plan_array(load_spec(f"examples/{name}.yaml"))]).graph
        lp, asap = insert_pipeline(graph, 1.0), asap_pipeline(graph, 1.0)
        assert lp.register_bits <= asap.register_bits
        assert lp.latency == asap.latency
