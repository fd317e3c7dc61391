"""unit_graphs builds a graph per declared unit of an architecture, the quantizer and the KV
address generator included, at the declared lanes, group and descriptors."""

from pathlib import Path

from hw.front.arch import load_arch
from hw.ir.units.from_arch import unit_graphs


def test_lego_fused_has_every_unit_graph():
    arch = load_arch(Path(__file__).parents[4] / "examples/arch/lego_fused.yaml")
    graphs = unit_graphs(arch)
    assert list(graphs) == ["requant", "softmax", "normalizer", "normalizer.reciprocal",
                            "dequant", "quantizer", "kv_cache"]
    inputs = {name: {n.name for n in g if n.kind == "input"} for name, g in graphs.items()}
    lanes = arch.units.quantizer.lanes
    assert inputs["quantizer"] == {"first", "signed", "wide"} | {f"x{l}" for l in range(lanes)}
    assert inputs["kv_cache"] == {"sink", "recent", "retrieval", "reset", "advance", "desc"}
    regs = [n for n in graphs["kv_cache"] if n.kind == "register"]
    assert len(regs) == 2 * arch.units.kv_cache.descriptors
