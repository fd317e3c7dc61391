"""Workload units of an architecture: golden's defaults, every field checked with its name and
value, YAML shorthands and hints, round trips, and the checks against the array and memories."""

import copy
import inspect
from dataclasses import fields, replace
from pathlib import Path

import pytest
import yaml

from golden.group_dequant import GroupDequantSpec
from golden.linear_attention_fixed import linear_attention_int
from golden.softmax_fixed import SoftmaxFixedConfig
from hw.front.arch import ArchSpec, arch_from_dict, load_arch
from hw.front.spec_model import SpecError
from hw.front.units import (
    UNIT_NAMES,
    DequantUnit,
    KvCacheUnit,
    NormalizerUnit,
    QuantizerUnit,
    RequantUnit,
    SoftmaxUnit,
    UnitsSpec,
    dequant_dot_bits,
    units_from_dict,
)
from tests.hw.accel_cases import tiny_arch, tiny_arch_dict

ALL = {"operand_relu": True, "requant": True, "softmax": True, "normalizer": True,
       "dequant": True, "quantizer": True, "kv_cache": True}


def test_defaults_are_goldens():
    cfg = SoftmaxUnit().golden_config()
    assert cfg == SoftmaxFixedConfig()
    assert {f.name: getattr(SoftmaxUnit(), f.name) for f in fields(SoftmaxFixedConfig)} \
        == {f.name: getattr(SoftmaxFixedConfig(), f.name) for f in fields(SoftmaxFixedConfig)}
    assert DequantUnit().golden_spec() == GroupDequantSpec()
    assert DequantUnit().dot_bits == GroupDequantSpec().dot_bits == 14
    params = inspect.signature(linear_attention_int).parameters    # golden's defaults
    defaults = {k: p.default for k, p in params.items() if p.default is not p.empty}
    assert NormalizerUnit().golden_params() == {k: defaults[k] for k in
                                                ("out_frac_bits", "den_bits", "recip_frac_bits")}
    assert NormalizerUnit().out_bits == 16
    assert (RequantUnit().lanes, RequantUnit().mult_bits) == (16, 16)
    assert (QuantizerUnit().lanes, QuantizerUnit().group) == (16, 64)
    assert KvCacheUnit().descriptors == 8
    assert SoftmaxUnit().weight_bits == 8 and DequantUnit().lowrank is True


def test_golden_gets_the_fields():
    cfg = SoftmaxUnit(table_bits=7, interpolate=False, out_frac_bits=12).golden_config()
    assert (cfg.table_bits, cfg.interpolate, cfg.out_frac_bits) == (7, False, 12)
    spec = DequantUnit(mant_bits=12, guard_bits=3, acc_bits=40, dot_bits=20).golden_spec()
    assert spec == GroupDequantSpec(mant_bits=12, dot_bits=20, guard_bits=3, acc_bits=40)


@pytest.mark.parametrize("group, bits", [(1, 8), (16, 12), (64, 14), (128, 15), (8192, 21)])
def test_dot_bits_from_group(group, bits):
    assert dequant_dot_bits(group) == bits
    assert DequantUnit(group=group).dot_bits == bits
    assert 120 * group < 2 ** (bits - 1) <= 2 * 120 * group or group == 1


def test_dot_bits_wider_and_replace():
    unit = DequantUnit(dot_bits=18)
    assert unit.dot_bits == 18 and unit == DequantUnit(group=64, dot_bits=18)
    assert DequantUnit(dot_bits=None) == DequantUnit(dot_bits=14)
    with pytest.raises(SpecError, match=r"units.dequant.dot_bits = 14 is too narrow for "
                                        r"group 128: .* needs 15 bits"):
        replace(DequantUnit(), group=128)
    assert replace(DequantUnit(), group=128, dot_bits=None).dot_bits == 15


BAD = [
    ("requant", "lanes", v) for v in (0, -1, 1025, True, 1.5, "16", None)
] + [
    ("requant", "mult_bits", v) for v in (1, 33, 0, False, 16.0)
] + [
    ("softmax", "lanes", v) for v in (0, 2000, "x")
] + [
    ("softmax", "in_frac_bits", v) for v in (-1, 25, True)
] + [
    ("softmax", "log2e_bits", v) for v in (3, 25)
] + [
    ("softmax", "t_frac_bits", v) for v in (0, 25)
] + [
    ("softmax", "table_bits", v) for v in (0, 11, 17)
] + [
    ("softmax", "exp_bits", v) for v in (3, 25)
] + [
    ("softmax", "out_frac_bits", v) for v in (0, 25)
] + [
    ("softmax", "interpolate", v) for v in (1, "yes", None)
] + [
    ("softmax", "weight_bits", v) for v in (1, 17, 8.0)
] + [
    ("normalizer", "lanes", v) for v in (0, None)
] + [
    ("normalizer", "den_bits", v) for v in (1, 31, -2, True, "16")
] + [
    ("normalizer", "recip_frac_bits", v) for v in (-1, 38, 2.0)
] + [
    ("normalizer", "out_frac_bits", v) for v in (-1, 41, None)
] + [
    ("dequant", "lanes", v) for v in (0, 4096)
] + [
    ("dequant", "group", v) for v in (0, 8193, True)
] + [
    ("dequant", "mant_bits", v) for v in (1, 25, "16")
] + [
    ("dequant", "guard_bits", v) for v in (-1, 17)
] + [
    ("dequant", "acc_bits", v) for v in (1, 54)
] + [
    ("dequant", "dot_bits", v) for v in (13, 99, 2, True)
] + [
    ("dequant", "lowrank", v) for v in (0, "no")
] + [
    ("quantizer", "lanes", v) for v in (0, -4)
] + [
    ("quantizer", "group", v) for v in (0, 10000, [64])
] + [
    ("kv_cache", "descriptors", v) for v in (0, 257, 2.5)
]


@pytest.mark.parametrize("unit, field, value", BAD)
def test_bad_field_named(unit, field, value):
    path = rf"units\.{unit}\.{field}\b"
    with pytest.raises(SpecError, match=path) as info:
        units_from_dict({unit: {field: value}})
    assert repr(value) in str(info.value) or str(value) in str(info.value)
    with pytest.raises(SpecError, match=path):      # the dataclass itself, not only YAML
        type(getattr(units_from_dict({unit: True}), unit))(**{field: value})


@pytest.mark.parametrize("unit, fields_, message", [
    ("softmax", {"table_bits": 9, "t_frac_bits": 8},
     r"units\.softmax\.table_bits \(9\) must be <= t_frac_bits \(8\)"),
    ("softmax", {"in_frac_bits": 0, "log2e_bits": 8, "t_frac_bits": 16},
     r"units\.softmax\.in_frac_bits \+ log2e_bits \(8\) must be >= t_frac_bits \(16\)"),
    ("softmax", {"weight_bits": 12, "exp_bits": 10},
     r"units\.softmax\.weight_bits = 12 needs exp_bits >= 11, got 10"),
    ("normalizer", {"den_bits": 30, "recip_frac_bits": 24},
     r"units\.normalizer\.recip_frac_bits must be in 0\.\.23, got 24"),
    ("normalizer", {"den_bits": 10, "recip_frac_bits": 4, "out_frac_bits": 15},
     r"units\.normalizer\.out_frac_bits must be in 0\.\.14, got 15"),
    ("dequant", {"dot_bits": 24, "mant_bits": 24, "guard_bits": 16},
     r"units\.dequant: term width 64 bits exceeds 62 \(dot_bits \+ mant_bits \+ guard_bits "
     r"= 24 \+ 24 \+ 16\)"),
])
def test_bad_field_combinations(unit, fields_, message):
    with pytest.raises(SpecError, match=message):
        units_from_dict({unit: fields_})


@pytest.mark.parametrize("den_bits, recip_frac_bits, out_frac_bits",
                         [(2, 0, 2), (30, 23, 53), (16, 37, 53), (2, 51, 53)])
def test_normalizer_limits_are_goldens(den_bits, recip_frac_bits, out_frac_bits):
    NormalizerUnit(den_bits=den_bits, recip_frac_bits=recip_frac_bits,
                   out_frac_bits=out_frac_bits)
    with pytest.raises(SpecError, match=r"units\.normalizer\.out_frac_bits"):
        NormalizerUnit(den_bits=den_bits, recip_frac_bits=recip_frac_bits,
                       out_frac_bits=out_frac_bits + 1)


@pytest.mark.parametrize("d, message", [
    ({"softmx": True}, r"units.softmx: unknown key 'softmx'; did you mean 'softmax'\?"),
    ({"kvcache": True}, r"did you mean 'kv_cache'\?"),
    ({"operand_relu": 1}, r"units.operand_relu must be true or false, got 1"),
    ({"softmax": {"tabel_bits": 4}}, r"units.softmax.tabel_bits: unknown key 'tabel_bits'; "
                                     r"did you mean 'table_bits'\?"),
    ({"dequant": {"goup": 32}}, r"did you mean 'group'\?"),
    ({"requant": {"bits": 8}}, r"units.requant.bits: unknown key 'bits'"),
    ({"softmax": None}, r"units.softmax must be a mapping \(its fields, or true for all "
                        r"defaults, false for none\), got None"),
    ({"softmax": 16}, r"units.softmax must be a mapping"),
    ([], r"units must be a mapping"),
])
def test_unknown_names_and_shapes(d, message):
    with pytest.raises(SpecError, match=message):
        units_from_dict(d)


def test_where_names_the_section():
    with pytest.raises(SpecError, match=r"^arch\.units\.softmax\.table_bits must be"):
        units_from_dict({"softmax": {"table_bits": 0}}, where="arch.units")
    with pytest.raises(SpecError, match=r"^arch\.units\.sofmax: unknown key"):
        units_from_dict({"sofmax": True}, where="arch.units")


def test_shorthands_and_absence():
    assert units_from_dict(None) == UnitsSpec() == units_from_dict({})
    assert UnitsSpec().present() == () and UnitsSpec().to_dict() == {}
    every = units_from_dict(ALL)
    assert every.present() == UNIT_NAMES
    assert every == UnitsSpec(True, RequantUnit(), SoftmaxUnit(), NormalizerUnit(),
                              DequantUnit(), QuantizerUnit(), KvCacheUnit())
    off = units_from_dict({name: False for name in UNIT_NAMES})
    assert off == UnitsSpec()
    some = units_from_dict({"softmax": {"lanes": 8}, "kv_cache": True, "dequant": False})
    assert some.present() == ("softmax", "kv_cache")
    assert some.softmax == SoftmaxUnit(lanes=8) and some.dequant is None
    assert some.lanes() == {"softmax": 8}


@pytest.mark.parametrize("d", [
    {},
    ALL,
    {"operand_relu": False, "softmax": True},
    {"softmax": {"lanes": 4, "table_bits": 3, "interpolate": False, "out_frac_bits": 7,
                 "weight_bits": 4},
     "dequant": {"lanes": 2, "group": 128, "lowrank": False, "dot_bits": 20},
     "normalizer": {"den_bits": 20, "recip_frac_bits": 30, "out_frac_bits": 4},
     "requant": {"mult_bits": 32}, "quantizer": {"group": 32}, "kv_cache": {"descriptors": 1}},
])
def test_round_trip(d):
    spec = units_from_dict(d)
    assert units_from_dict(spec.to_dict()) == spec
    text = yaml.safe_dump(spec.to_dict())         # through YAML text, too
    assert units_from_dict(yaml.safe_load(text)) == spec
    assert hash(units_from_dict(spec.to_dict())) == hash(spec)
    assert tuple(spec.to_dict()) == spec.present()
    assert len(spec.describe().splitlines()) == len(spec.present())


def test_frozen_and_checked():
    spec = UnitsSpec(softmax=SoftmaxUnit())
    with pytest.raises(AttributeError):
        spec.softmax = None
    with pytest.raises(AttributeError):
        spec.softmax.lanes = 4
    with pytest.raises(SpecError, match=r"units.softmax must be a SoftmaxUnit or None"):
        UnitsSpec(softmax=DequantUnit())
    with pytest.raises(SpecError, match=r"units.operand_relu must be true or false"):
        UnitsSpec(operand_relu="yes")
    assert "requant      lanes=16 mult_bits=16" in units_from_dict(ALL).describe()
    assert "operand_relu on" in units_from_dict(ALL).describe()


# --- against the architecture -------------------------------------------------------------

def _gemmini(units):
    with open("examples/arch/gemmini_like.yaml") as f:
        d = yaml.safe_load(f)
    d["units"] = units
    return d


def test_shipped_architectures():
    lego = load_arch("examples/arch/lego_fused.yaml")
    assert lego.units.present() == UNIT_NAMES
    # the YAML spells out golden's defaults, but for the dequantizer's dot register, wide
    # enough for the low-rank branch's dots (rank <= 64 at 8 bits)
    assert lego.units == units_from_dict({**ALL, "dequant": {"dot_bits": 22}})
    gemmini = load_arch("examples/arch/gemmini_like.yaml")
    assert gemmini.units == UnitsSpec() and gemmini.units.present() == ()


def test_arch_carries_units():
    arch = arch_from_dict(_gemmini(ALL))
    assert arch.units == units_from_dict(ALL)
    assert replace(arch, pad_to=1).units == arch.units
    assert replace(arch, units=UnitsSpec()) == load_arch("examples/arch/gemmini_like.yaml")
    assert arch != load_arch("examples/arch/gemmini_like.yaml")
    assert hash(arch) != hash(replace(arch, units=UnitsSpec()))
    assert "units=UnitsSpec(" in repr(arch)          # the RTL cache key (repr) sees them
    assert arch_from_dict(_gemmini(None)).units == UnitsSpec()
    with pytest.raises(SpecError, match=r"units must be a UnitsSpec"):
        replace(arch, units={"softmax": True})


def test_tiny_units_variant():
    arch = tiny_arch("units")
    assert arch.units.present() == UNIT_NAMES
    assert set(arch.units.lanes().values()) == {4}
    base = tiny_arch_dict("int8")
    d = tiny_arch_dict("units")
    del d["units"]
    d["name"] = base["name"]
    assert d == base                                   # the rest is the int8 variant


@pytest.mark.parametrize("units, message", [
    ({"softmax": {"lanes": 32}}, r"units.softmax.lanes = 32 must divide the 16 int32 elements "
                                 r"of an accumulator row \(64 bytes\)"),
    ({"requant": {"lanes": 3}}, r"units.requant.lanes = 3 must divide the 16"),
    ({"normalizer": {"lanes": 17}}, r"units.normalizer.lanes = 17"),
    ({"dequant": {"lanes": 64}}, r"units.dequant.lanes = 64"),
    ({"quantizer": {"lanes": 6}}, r"units.quantizer.lanes = 6"),
    ({"softmax": {"weight_bits": 9}}, r"units.softmax.weight_bits = 9 exceeds the 8 bits of "
                                      r"the A operand type int8"),
    ({"dequant": {"group": 40}}, r"units.dequant.group = 40 is not a multiple of the array "
                                 r"edge 16"),
    ({"quantizer": {"group": 8}}, r"units.quantizer.group = 8 is not a multiple of the array "
                                  r"edge 16"),
    ({"normalizer": {"out_frac_bits": 25}}, r"units.normalizer.out_frac_bits = 25: its 8 \+ 25 "
                                            r"= 33-bit outputs exceed the 32 bits of the C type "
                                            r"int32"),
])
def test_arch_cross_checks(units, message):
    with pytest.raises(SpecError, match=message):
        arch_from_dict(_gemmini(units))


def test_arch_cross_checks_follow_the_arch():
    d = copy.deepcopy(tiny_arch_dict("int4"))          # int4 x int4 -> int16, 4-element rows
    d["units"] = {"normalizer": {"lanes": 4, "out_frac_bits": 8},
                  "softmax": {"weight_bits": 4, "lanes": 4},
                  "dequant": {"lanes": 2, "group": 4}, "requant": {"lanes": 1, "mult_bits": 32}}
    arch = arch_from_dict(d)
    assert arch.units.dequant.group == 4
    for units, message in (
            ({"normalizer": {"lanes": 4, "out_frac_bits": 9}},
             r"8 \+ 9 = 17-bit outputs exceed the 16 bits of the C type int16"),
            ({"softmax": {"lanes": 4, "weight_bits": 5}},
             r"weight_bits = 5 exceeds the 4 bits .* int4"),
            ({"dequant": {"lanes": 4, "group": 6}},
             r"group = 6 is not a multiple of the array edge 4"),
            ({"requant": {"lanes": 8}}, r"lanes = 8 must divide the 4 int16 elements")):
        d["units"] = units
        with pytest.raises(SpecError, match=message):
            arch_from_dict(d)
    wide = copy.deepcopy(tiny_arch_dict("int8"))       # 64-bit accumulators: no room for mult
    wide["types"]["C"] = "int64"
    wide["accumulator"]["row_bytes"] = 32
    wide["units"] = {"requant": {"lanes": 4, "mult_bits": 2}}
    with pytest.raises(SpecError, match=r"units.requant.mult_bits = 2: a 64-bit int64 element "
                                        r"times it exceeds 64 bits"):
        arch_from_dict(wide)


def test_file_error_names_file_and_field(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text(Path("examples/arch/gemmini_like.yaml").read_text()
                 + "units:\n  softmax: {tabel_bits: 4}\n")
    with pytest.raises(SpecError, match=r"bad.yaml: units.softmax.tabel_bits: unknown key "
                                        r"'tabel_bits'; did you mean 'table_bits'\?"):
        load_arch(p)
    p.write_text(Path("examples/arch/gemmini_like.yaml").read_text() + "unit: {}\n")
    with pytest.raises(SpecError, match=r"unit: unknown key 'unit'; did you mean 'units'\?"):
        load_arch(p)
    assert isinstance(load_arch("examples/arch/lego_fused.yaml"), ArchSpec)
