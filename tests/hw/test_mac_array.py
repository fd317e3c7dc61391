import subprocess
import sys

import pytest

from hw.emit import to_verilog, write_text_atomic
from hw.mac import MacSpec
from hw.mac_array import MacArray, MacArraySpec


class TestMacArraySpec:
    @pytest.mark.parametrize("field", ["rows", "cols", "depth"])
    def test_positive(self, field):
        with pytest.raises(ValueError, match=f"MacArraySpec.{field} must be a positive"):
            MacArraySpec(**{field: 0})

    def test_run_cycles(self):
        spec = MacArraySpec(rows=3, cols=5, depth=16)
        # K words streamed, (rows-1)+(cols-1) skew, one read and one accumulate cycle.
        assert spec.run_cycles(16) == 16 + 2 + 4 + 2
        with pytest.raises(ValueError, match="k must be in 1..16, got 17"):
            spec.run_cycles(17)


class TestMacArray:
    def test_ports(self):
        spec = MacArraySpec(rows=2, cols=3, mac=MacSpec("int4", "uint4", acc_bits=20), depth=8)
        v = to_verilog(MacArray(spec), "arr")
        assert "input [7:0] a_wdata;" in v       # 2 lanes x 4 bits
        assert "input [11:0] b_wdata;" in v      # 3 lanes x 4 bits
        assert "output [59:0] c_rdata;" in v     # 3 lanes x 20 bits
        assert "module arr(" in v

    def test_emission_deterministic_in_process(self):
        spec = MacArraySpec(rows=2, cols=2, depth=4)
        assert to_verilog(MacArray(spec), "t") == to_verilog(MacArray(spec), "t")

    def test_emission_deterministic_across_processes(self):
        code = ("import hashlib; from hw.emit import to_verilog; from hw.mac_array import *; "
                "print(hashlib.sha256(to_verilog(MacArray(MacArraySpec(2, 3, depth=8)), 't')"
                ".encode()).hexdigest())")
        digests = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                  check=True).stdout for _ in range(2)}
        assert len(digests) == 1
        v = to_verilog(MacArray(MacArraySpec(2, 3, depth=8)), "t")
        import hashlib

        assert digests == {hashlib.sha256(v.encode()).hexdigest() + "\n"}

    def test_no_source_paths(self):
        v = to_verilog(MacArray(MacArraySpec(2, 2, depth=4)), "t")
        assert ".py:" not in v and "/work/" not in v

    def test_bad_name(self):
        with pytest.raises(ValueError, match="Verilog identifier"):
            to_verilog(MacArray(MacArraySpec(2, 2, depth=4)), "my-top")


class TestWriteTextAtomic:
    def test_writes(self, tmp_path):
        p = write_text_atomic(tmp_path / "x.v", "abc")
        assert p.read_text() == "abc"
        assert [f.name for f in tmp_path.iterdir()] == ["x.v"]

    def test_failure_leaves_nothing(self, tmp_path):
        with pytest.raises(OSError):
            write_text_atomic(tmp_path / "missing" / "x.v", "abc")
        assert list(tmp_path.iterdir()) == []
