"""The accelerator generator: deterministic Verilog that depends on the architecture only,
memories without per-word initial contents, clear errors for what it cannot build."""

import pytest

from hw.front.accel_params import accel_params
from hw.front.arch import arch_from_dict
from hw.front.spec_model import SpecError
from hw.rtl.accel import accelerator_verilog, top_name
from hw.rtl.accel_ports import accel_signature
from tests.hw.accel_cases import tiny_arch


def test_verilog_is_deterministic_and_has_the_ports():
    arch = tiny_arch("int8")
    text = accelerator_verilog(arch)
    assert text == accelerator_verilog(arch)
    assert f"module {top_name(arch)}(" in text
    for name in (*accel_signature(4).members, "clk", "rst"):
        assert f"input {name}" in text or f"output {name}" in text \
            or f"] {name};" in text, name
    assert "initial begin" not in text          # no per-word memory contents


def _arch(**changes):
    d = {"name": "x", "array": [4, 4], "types": {"A": "int8", "B": "int8", "C": "int32"},
         "dataflows": [{"name": "os", "space": ["i", "j"], "time": "i + j + k"}],
         "scratchpad": {"capacity_bytes": 1024, "banks": 4, "row_bytes": 4},
         "accumulator": {"capacity_bytes": 1024, "banks": 2, "row_bytes": 16},
         "dram": {"bytes_per_cycle": 4, "latency_cycles": 3}, "clock_mhz": 100}
    d.update(changes)
    return arch_from_dict(d)


@pytest.mark.parametrize("changes,message", [
    ({"array": [4, 8], "scratchpad": {"capacity_bytes": 1024, "banks": 4, "row_bytes": 8},
      "accumulator": {"capacity_bytes": 2048, "banks": 2, "row_bytes": 32},
      "dram": {"bytes_per_cycle": 8, "latency_cycles": 3}}, "square arrays, got 4x8"),
    ({"types": {"A": "int8", "B": "int4", "C": "int32"}}, "one scratchpad type"),
    ({"dram": {"bytes_per_cycle": 8, "latency_cycles": 3}},
     "dram.bytes_per_cycle=8 but scratchpad.row_bytes=4"),
    ({"dram": {"bytes_per_cycle": 4, "latency_cycles": 0}}, "latency >= 1"),
    ({"accumulator": {"capacity_bytes": 960, "banks": 2, "row_bytes": 24},
      "dram": {"bytes_per_cycle": 4, "latency_cycles": 3},
      "scratchpad": {"capacity_bytes": 1024, "banks": 4, "row_bytes": 4},
      "types": {"A": "int8", "B": "int8", "C": "int32"}, "array": [4, 4]}, None),
])
def test_unsupported_architectures_are_named(changes, message):
    arch = _arch(**changes)
    if message is None:         # 24-byte accumulator rows are whole 4-byte beats: fine
        assert accel_params(arch).acc_elems == 6
        return
    with pytest.raises(SpecError, match=message.replace("(", r"\(").replace(")", r"\)")):
        accel_params(arch)
