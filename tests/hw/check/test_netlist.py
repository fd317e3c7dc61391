"""Reading emitted Verilog back: ports, registers, memories and the instance hierarchy."""

import os

import pytest
from amaranth.back import verilog
from amaranth.hdl import Module, Shape, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hw.check import netlist
from hw.check.netlist import Port, VerilogParseError, read_netlist
from hw.front.plan import plan_array
from hw.front.spec import spec_from_dict
from hw.rtl.emit import to_verilog
from hw.rtl.generate import GeneratedArray

from ..front.test_spec import gemm


@pytest.fixture(scope="module", autouse=True)
def fresh_parser_in_tmp_cwd(tmp_path_factory):
    """Build this process's parser inside an empty cwd; yields what it left there."""
    cwd = tmp_path_factory.mktemp("cwd")
    old_cwd, old_parser = os.getcwd(), netlist._PARSER
    netlist._PARSER = None
    os.chdir(cwd)
    try:
        read_netlist("module m; endmodule", "m")
        left = sorted(os.listdir(cwd))
    finally:
        os.chdir(old_cwd)
    yield left
    netlist._PARSER = old_parser or netlist._PARSER


class _Small(wiring.Component):
    """Two sync registers, a comb signal (an ``always @*`` reg) and an 8 x 16 memory."""

    def __init__(self):
        super().__init__({"x": In(4), "en": In(1), "waddr": In(4), "raddr": In(4),
                          "y": Out(signed(6)), "q": Out(8), "flag": Out(1)})

    def elaborate(self, platform):
        m = Module()
        r3, acc, combo = Signal(3, name="r3"), Signal(12, name="acc"), Signal(5, name="combo")
        m.d.sync += [r3.eq(self.x), acc.eq(acc + self.x)]
        with m.If(self.en):
            m.d.comb += combo.eq(self.x + 1)
        with m.Else():
            m.d.comb += combo.eq(r3)
        m.d.comb += [self.y.eq(combo), self.flag.eq(acc[0])]
        m.submodules.mem = mem = Memory(shape=8, depth=16, init=[])
        wp, rp = mem.write_port(), mem.read_port()
        m.d.comb += [wp.en.eq(self.en), wp.addr.eq(self.waddr), wp.data.eq(acc[:8]),
                     rp.addr.eq(self.raddr), self.q.eq(rp.data)]
        return m


class _CombOnly(wiring.Component):
    def __init__(self):
        super().__init__({"a": In(7), "b": Out(7)})

    def elaborate(self, platform):
        m = Module()
        with m.If(self.a[0]):
            m.d.comb += self.b.eq(self.a + 1)
        return m


@pytest.fixture(scope="module")
def small():
    text = verilog.convert(_Small(), name="small", emit_src=False)
    assert "(*" in text and "always @*" in text     # what the reader has to cope with
    return read_netlist(text, "small")


_OS_2x2 = gemm(**{"name": "arr", "array": [2, 2], "op.dims": {"i": 2, "j": 2, "k": 8}})


@pytest.fixture(scope="module")
def generated():
    dut = GeneratedArray([plan_array(spec_from_dict(_OS_2x2))])
    return dut, read_netlist(to_verilog(dut, "arr"), "arr")


def test_nothing_written_to_cwd(fresh_parser_in_tmp_cwd):
    assert fresh_parser_in_tmp_cwd == []


class TestAmaranthDesign:
    def test_ports(self, small):
        assert small.ports == {
            "x": Port("x", "input", 4), "en": Port("en", "input", 1),
            "waddr": Port("waddr", "input", 4), "raddr": Port("raddr", "input", 4),
            "y": Port("y", "output", 6), "q": Port("q", "output", 8),
            "flag": Port("flag", "output", 1),
            "clk": Port("clk", "input", 1), "rst": Port("rst", "input", 1),
        }

    def test_registers(self, small):
        # ``_0_`` is the memory read port's data register (Yosys's name for it); ``combo`` and
        # the ``$3``/``$4`` next-state regs of ``always @*`` blocks are not registers.
        assert small.registers == {"acc": 12, "r3": 3, "_0_": 8}
        assert small.register_bits == 23

    def test_memory(self, small):
        assert small.memories == {"mem": (8, 16)}
        assert small.top_module.memory_bits == 128
        assert small.submodules == {} and small.total_register_bits == 23

    def test_comb_only_has_no_registers(self):
        text = verilog.convert(_CombOnly(), name="c", emit_src=True)
        assert '(* src = "' in text        # source locations: attributes holding strings
        n = read_netlist(text, "c")
        assert n.registers == {} and n.memories == {}
        assert n.ports == {"a": Port("a", "input", 7), "b": Port("b", "output", 7)}


class TestGeneratedArray:
    def test_ports_match_signature(self, generated):
        dut, n = generated
        expected = {name: (("input" if member.flow == wiring.In else "output"),
                           Shape.cast(member.shape).width)
                    for name, member in dut.signature.members.items()}
        expected |= {"clk": ("input", 1)}           # reset-free: no rst port
        assert {p.name: (p.direction, p.width) for p in n.ports.values()} == expected

    def test_memories(self, generated):
        _, n = generated
        # 2 row roots of A, 2 column roots of B (8 words of k); the 4 output writers share
        # banks unless they write in the same cycle: (0,1) and (1,0) do, so 2 banks, balanced
        # (2 + 2 words)
        assert sorted(n.memories.values()) == [(8, 8)] * 4 + [(32, 2), (32, 2)]

    def test_hierarchy(self, generated):
        dut, n = generated
        # every FU is an instance of one FU module, emitted once after the top
        fu = dut.fu_module
        assert fu == "arr_fu_i8xi8_a32_s"       # int8 x int8, 32-bit, accumulating in place
        assert n.submodules == {f"fu_{i}_{j}": fu for i in range(2) for j in range(2)}
        assert set(n.all_modules()) == {"arr", fu}
        assert n.modules[fu].registers == {"acc": 32}
        assert n.instance_counts() == {"arr": 1, fu: 4}
        assert n.total_register_bits == n.register_bits + 4 * 32
        assert n.external_modules == []

    def test_top_registers(self, generated):
        _, n = generated
        # Controller, flags and the systolic hop registers of A (right) and B (down).
        assert {"busy": 1, "done": 1, "A_0_1_d0": 8, "B_1_0_d0": 8}.items() <= n.registers.items()


_HAND = r"""
// a comment with (* no attribute *) and @(*)
module leaf #(parameter W = 4) (input clk, input [W-1:0] d, output reg [W-1:0] q);
  localparam D = 2 * W;
  reg [W-1:0] mem [0:D-1];
  reg [7:0] c;
  always @(*) c = d;
  always @(posedge clk or negedge d[0]) begin q <= d; mem[d] <= d; end
endmodule
(* keep, note = "(* x *)" *) module top(clk, a, z, z2);
  input clk; input [3:0] a; output [3:0] z; inout [1:0] z2;
  reg [1:0] p, r, idle;
  reg [1:0] \s$1 = 2'b0;
  always @(posedge clk) {p, r} <= a;
  always @(posedge clk) \s$1 [0] <= 1'b1;
  leaf u0 (.clk(clk), .d(a), .q(z));
  leaf #(.W(4)) u1 (.clk(clk), .d(a), .q());
  blackbox bb (.x(a));
endmodule
"""


class TestHandWritten:
    def test_module_styles(self):
        n = read_netlist(_HAND, "top")
        assert n.ports == {"clk": Port("clk", "input", 1), "a": Port("a", "input", 4),
                           "z": Port("z", "output", 4), "z2": Port("z2", "inout", 2)}
        assert n.registers == {"p": 2, "r": 2, "s$1": 2}
        assert n.submodules == {"u0": "leaf", "u1": "leaf", "bb": "blackbox"}
        leaf = n.modules["leaf"]
        assert leaf.ports["d"] == Port("d", "input", 4)
        assert leaf.registers == {"q": 4} and leaf.memories == {"mem": (4, 8)}

    def test_totals_count_each_instance(self):
        n = read_netlist(_HAND, "top")
        assert n.instance_counts() == {"top": 1, "leaf": 2, "blackbox": 1}
        assert n.total_register_bits == 6 + 2 * 4
        assert n.total_memory_bits == 2 * 32
        assert n.external_modules == ["blackbox"]

    def test_other_top(self):
        assert read_netlist(_HAND, "leaf").ports["q"] == Port("q", "output", 4)

    def test_recursive_hierarchy(self):
        n = read_netlist("module a; b u(); endmodule\nmodule b; a v(); endmodule", "a")
        with pytest.raises(ValueError, match="module 'a' instantiates itself: a -> b -> a"):
            n.total_register_bits  # noqa: B018


class TestErrors:
    def test_unknown_top(self):
        with pytest.raises(ValueError, match=r"module 'nope' is not defined .*'leaf', 'top'"):
            read_netlist(_HAND, "nope")

    def test_parse_error_one_line_with_location(self):
        read_netlist(_HAND, "top")      # the reused lexer must count lines from 1 again
        bad = "module a(x);\n  input x;\n  reg [3:0 y;\nendmodule\n"
        with pytest.raises(VerilogParseError, match=r'line:3: before: "y"') as info:
            read_netlist(bad, "a")
        assert "\n" not in str(info.value) and "reg [3:0 y;" in str(info.value)
        assert isinstance(info.value, ValueError)

    def test_truncated_text(self):
        with pytest.raises(VerilogParseError, match="at end of input"):
            read_netlist("module a(x); input x;", "a")

    def test_port_without_direction(self):
        with pytest.raises(ValueError, match="port 'x' of module 'a' has no direction"):
            read_netlist("module a(x); wire x; endmodule", "a")

    def test_non_constant_width(self):
        with pytest.raises(ValueError, match="width of r in a is not a constant"):
            read_netlist("module a; reg [n:0] r; endmodule", "a")
