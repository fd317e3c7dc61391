"""Emission: the emit_design contract, the ports of a generated top, an array inside a larger
design (the parent's clock, unique FU module names) and atomic writes' permissions."""

from __future__ import annotations

import os
import stat
import subprocess

import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import Out

from hw.front.plan import plan_array
from hw.front.spec import load_spec, load_specs, spec_from_dict
from hw.rtl import ports
from hw.rtl.emit import emit_design, module_names, to_verilog, write_text_atomic
from hw.rtl.generate import GeneratedArray
from sim.fast import scan_ports
from sim.runner import VERILATOR_FLAGS
from sim.toolchain import verilator_bin_dir


def _spec(example: str, name: str = "arr", operand_type: str | None = None):
    """``examples/<example>.yaml`` renamed to ``name``, with both operands of ``operand_type``."""
    import yaml

    with open(f"examples/{example}.yaml") as f:
        src = yaml.safe_load(f)
    tensors = dict(src["op"]["tensors"])
    if operand_type is not None:
        for t in ("A", "B"):
            tensors[t] = {**tensors[t], "type": operand_type}
    return spec_from_dict({**src, "name": name, "op": {**src["op"], "tensors": tensors}})


class TestEmitDesign:
    def test_single_and_fused(self):
        plans, top, v = emit_design([load_spec("examples/gemm_ws.yaml")])
        assert len(plans) == 1 and top.plans == plans and module_names(v)[0] == "gemm_ws"
        specs = load_specs("examples/gemm_fused.yaml")
        emitted = emit_design(specs)
        assert len(emitted.plans) == len(specs) == len(emitted.top.plans)
        assert module_names(emitted.verilog)[0] == specs[0].name

    def test_contract(self):
        with pytest.raises(TypeError, match=r"sequence of DesignSpecs \(e.g. \[spec\]\)"):
            emit_design(load_spec("examples/gemm_ws.yaml"))
        with pytest.raises(ValueError, match="at least one spec"):
            emit_design([])


class TestPorts:
    def test_one_definition(self):
        """The array's ports are array_signature's, in the names of hw.rtl.ports."""
        fused = emit_design(load_specs("examples/gemm_fused.yaml"))
        single = emit_design([load_spec("examples/gemm_os.yaml")])
        for emitted, n_modes in ((single, 1), (fused, 3)):
            top = emitted.top
            assert top.signature == ports.array_signature(top.addr_bits, top.host.data_bits,
                                                          n_modes)
            widths = scan_ports(emitted.verilog, top.plan.spec.name)
            names = {ports.CLOCK, *ports.HOST_PORTS, *ports.CONTROL_PORTS}
            assert set(widths) == names | ({ports.MODE} if n_modes > 1 else set())
            assert widths[ports.HOST_ADDR] == top.addr_bits

    def test_fast_harness_takes_names_from_ports(self):
        from sim.fast import _PROTOCOL, _main_source

        assert set(_PROTOCOL) == {ports.CLOCK, *ports.HOST_PORTS, *ports.CONTROL_PORTS}
        source = _main_source("t", {**dict.fromkeys(_PROTOCOL, 8), ports.MODE: 2})
        for name in (ports.CLOCK, ports.HOST_ADDR, ports.HOST_WDATA, ports.HOST_WE,
                     ports.HOST_RDATA, ports.START, ports.DONE, ports.MODE):
            assert f"t->{name}" in source

    def test_control_signature(self):
        assert ports.MODE not in ports.control_signature(1).members
        assert ports.port_widths(ports.control_signature(5))[ports.MODE] == 3
        with pytest.raises(ValueError, match="n_modes must be at least 1"):
            ports.control_signature(0)


class _Arrays(wiring.Component):
    """A parent design: several generated arrays side by side, each with its own ports."""

    def __init__(self, arrays: dict[str, GeneratedArray]) -> None:
        self.arrays = arrays
        super().__init__({name: Out(a.signature) for name, a in arrays.items()})

    def elaborate(self, platform) -> Module:
        m = Module()        # no clock domain here either: the arrays run in the emitted sync
        for name, array in self.arrays.items():
            m.submodules[name] = array
            wiring.connect(m, wiring.flipped(getattr(self, name)), array)
        return m


def _lint(text: str, top: str, tmp_path) -> subprocess.CompletedProcess:
    path = tmp_path / f"{top}.v"
    path.write_text(text)
    env = dict(os.environ, VERILATOR_ROOT=str(verilator_bin_dir().parent))
    return subprocess.run([str(verilator_bin_dir() / "verilator"), "--lint-only",
                           *VERILATOR_FLAGS, "--top-module", top, str(path)],
                          capture_output=True, text=True, env=env, cwd=tmp_path)


class TestArraysInOneDesign:
    def test_fu_module_named_from_its_arithmetic(self):
        names = set()
        for ex, t in (("gemm_os", None), ("gemm_os", "int4"), ("gemm_ws", None),
                      ("gemm_ws", "uint4")):
            top = GeneratedArray([plan_array(_spec(ex, operand_type=t))])
            top._MustUse__silence = True            # never elaborated
            names.add(top.fu_module)
        assert names == {"arr_fu_i8xi8_a32_s", "arr_fu_i4xi4_a32_s", "arr_fu_i8xi8_a32",
                         "arr_fu_u4xu4_a32"}

    def test_two_arithmetics_one_verilog(self, tmp_path):
        """Arrays of one spec name with int8 / int4 / non-stationary FUs in one design: every
        module name is defined once (an identical FU module is shared), Verilator accepts it,
        the parent's sync domain is the only clock and there is no reset."""
        arrays = {"a": GeneratedArray([plan_array(_spec("gemm_os"))]),
                  "b": GeneratedArray([plan_array(_spec("gemm_os", operand_type="int4"))]),
                  "c": GeneratedArray([plan_array(_spec("gemm_ws"))]),
                  "d": GeneratedArray([plan_array(_spec("gemm_os"))])}    # the same FU as a
        text = to_verilog(_Arrays(arrays), "pair")
        names = module_names(text)
        assert len(names) == len(set(names))
        assert {"arr_fu_i8xi8_a32_s", "arr_fu_i4xi4_a32_s", "arr_fu_i8xi8_a32"} <= set(names)
        widths = scan_ports(text, "pair")
        assert [p for p in widths if not p.startswith(("a__", "b__", "c__", "d__"))] == [
            ports.CLOCK]
        assert widths["b__" + ports.HOST_ADDR] == arrays["b"].addr_bits
        lint = _lint(text, "pair", tmp_path)
        assert lint.returncode == 0, lint.stdout + lint.stderr

    def test_same_name_different_module_rejected(self):
        class OldNaming(GeneratedArray):
            @property
            def fu_module(self):
                return f"{self.plan.spec.name}_fu"

        arrays = {"a": OldNaming([plan_array(_spec("gemm_os"))]),
                  "b": OldNaming([plan_array(_spec("gemm_os", operand_type="int4"))])}
        with pytest.raises(ValueError, match="two different Verilog modules named 'arr_fu'"):
            to_verilog(_Arrays(arrays), "pair")


class TestWriteTextAtomic:
    @pytest.fixture
    def umask(self):
        def set_umask(mask):
            os.umask(mask)

        old = os.umask(0o022)
        yield set_umask
        os.umask(old)

    @pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
    def test_new_file_permissions_follow_umask(self, tmp_path, umask, mask, mode):
        umask(mask)
        path = write_text_atomic(tmp_path / "x.v", "module x; endmodule\n")
        assert stat.S_IMODE(path.stat().st_mode) == mode
        assert path.read_text() == "module x; endmodule\n"
        assert [p.name for p in tmp_path.iterdir()] == ["x.v"]

    def test_nothing_half_written_on_failure(self, tmp_path, umask):
        target = tmp_path / "x.v"
        target.write_text("old\n")
        with pytest.raises(UnicodeEncodeError):
            write_text_atomic(target, "new \udcff")      # unencodable: fails mid-write
        assert target.read_text() == "old\n"
        assert [p.name for p in tmp_path.iterdir()] == ["x.v"]
        with pytest.raises(FileNotFoundError):
            write_text_atomic(tmp_path / "missing" / "y.v", "text")
