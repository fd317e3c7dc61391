"""The 45 nm energy table (mapping.energy): published points, interpolation, MAC, DRAM."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import yaml

from mapping.energy import (
    EnergyTable,
    dram_pj_per_byte,
    dram_range_pj_per_byte,
    energy_table,
    fp_op_pj,
    int_add_pj,
    int_mult_pj,
    load_energy_table,
    mac_pj,
    sram_access_pj,
    table_from_dict,
)


def test_table_cites_horowitz_and_holds_the_published_numbers():
    t = energy_table()
    assert "Horowitz" in t.source and "ISSCC 2014" in t.source and t.node_nm == 45
    assert t.int_add_pj == ((8, 0.03), (32, 0.1))
    assert t.int_mult_pj == ((8, 0.2), (32, 3.1))
    assert t.fp_mult_pj == ((16, 1.1), (32, 3.7))
    assert t.fp_add_pj == ((16, 0.4), (32, 0.9))
    assert fp_op_pj() == pytest.approx(2.3) and fp_op_pj(16) == pytest.approx(0.75)
    assert t.sram_read_pj == ((8192, 10.0), (32768, 20.0), (1 << 20, 100.0))
    assert (t.dram_low_pj, t.dram_high_pj, t.dram_access_bits) == (1300.0, 2600.0, 64)


def test_sram_hits_the_published_points_exactly():
    assert sram_access_pj(64, 8 * 1024) == 10.0
    assert sram_access_pj(64, 32 * 1024) == 20.0
    assert sram_access_pj(64, 1024 * 1024) == 100.0


def test_sram_interpolates_log_log_and_clamps():
    # halfway in log capacity is halfway in log energy
    assert sram_access_pj(64, 16 * 1024) == pytest.approx(math.sqrt(10 * 20))
    assert sram_access_pj(64, 64 * 1024) == pytest.approx(20 * 5 ** (1 / 5))
    assert sram_access_pj(64, 256) == 10.0                  # below 8 KB: the 8 KB energy
    assert sram_access_pj(64, 64 << 20) == 100.0            # above 1 MB: the 1 MB energy


def test_sram_is_monotonic_in_size_and_linear_in_width():
    sizes = [int(2 ** (e / 4)) for e in range(32, 100)]     # 256 B .. ~28 MB
    energies = [sram_access_pj(64, c) for c in sizes]
    assert all(a <= b for a, b in zip(energies, energies[1:], strict=False))
    assert all(a < b for a, b in zip(energies, energies[1:], strict=False)
               if 8192 <= sizes[energies.index(a)] < 1 << 20)
    for c in (4096, 40000, 1 << 18):
        assert sram_access_pj(128, c) == pytest.approx(2 * sram_access_pj(64, c))
        assert sram_access_pj(512, c) == pytest.approx(8 * sram_access_pj(64, c))


def test_mac_is_an_8bit_multiply_plus_a_32bit_add():
    assert int_mult_pj(8) == 0.2 and int_mult_pj(32) == 3.1
    assert int_add_pj(8) == 0.03 and int_add_pj(32) == 0.1
    assert mac_pj() == pytest.approx(0.3) == int_mult_pj(8) + int_add_pj(32)
    assert mac_pj(32, 32) == pytest.approx(3.2)
    # between published widths: log-log; outside: clamped
    assert int_mult_pj(16) == pytest.approx(math.sqrt(0.2 * 3.1))
    assert int_mult_pj(4) == 0.2 and int_add_pj(64) == 0.1


def test_dram_default_is_the_low_end_and_the_range_is_kept():
    assert dram_pj_per_byte() == 1300 / 8 == 162.5
    assert dram_pj_per_byte("low") == 162.5 and dram_pj_per_byte("high") == 325.0
    assert dram_range_pj_per_byte() == (162.5, 325.0)
    high = replace(energy_table(), dram_default="high")
    assert dram_pj_per_byte(table=high) == 325.0
    with pytest.raises(ValueError, match="which"):
        dram_pj_per_byte("mid")


def _raw() -> dict:
    from importlib import resources
    return yaml.safe_load(resources.files("mapping").joinpath(
        "data", "energy_45nm.yaml").read_text())


def test_load_from_a_path_round_trips(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump(_raw()))
    assert load_energy_table(path) == energy_table() == table_from_dict(_raw())


@pytest.mark.parametrize("edit, match", [
    (lambda d: d.update(source=""), "source"),
    (lambda d: d["int_mult_pj"].update({8: -1}), "positive energy"),
    (lambda d: d["sram"]["read_pj"].append({"capacity_bytes": 1 << 22, "pj": 50}),
     "non-decreasing"),
    (lambda d: d["dram"].update(low_pj=3000), "exceeds"),
    (lambda d: d["dram"].update(default="mid"), "dram_default"),
    (lambda d: d.pop("sram"), "missing key 'sram'"),
    (lambda d: d.update(extra=1), "unknown key 'extra'"),
])
def test_malformed_tables_are_rejected(edit, match):
    d = _raw()
    edit(d)
    with pytest.raises(ValueError, match=match):
        table_from_dict(d)


def test_table_is_frozen_and_hashable():
    t = energy_table()
    with pytest.raises(AttributeError):
        t.node_nm = 7                                       # type: ignore[misc]
    assert hash(t) == hash(load_energy_table())
    assert isinstance(t, EnergyTable)
