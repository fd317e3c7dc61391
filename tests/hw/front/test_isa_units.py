"""Unit commands in the instruction set: assembly with names, encoding, the checks against the
architecture's units, and the reference semantics against golden's functions."""

import numpy as np
import pytest

from golden.fixed_point import round_shift_right, saturate
from golden.linear_attention_fixed import normalize
from hw.front.accel_params import accel_params
from hw.front.accel_timing import accel_timing
from hw.front.arch import arch_from_dict, load_arch
from hw.front.isa import UNIT_MODES, ProgramError, assemble, decode, disassemble, encode
from hw.front.isa_machine import Machine
from tests.hw.accel_cases import tiny_arch, tiny_arch_dict

ARCH = tiny_arch("units")          # 4 lanes; scratchpad rows of 4 int8, accumulator of 4 int32


def _machine(acc: np.ndarray) -> Machine:
    m = Machine(ARCH, 64)
    m.accumulator[:acc.shape[0], :acc.shape[1]] = acc
    return m


def test_assembly_round_trip_with_names():
    text = ("unit unit=requant mode=absmax src=3 rows=5 cols=4 arg=1\n"
            "unit unit=requant mode=operand src=3 dst=7 rows=5 cols=4 arg=3 shift=255\n"
            "unit unit=normalizer mode=divide dst=8 rows=2 cols=3 arg=4 count=2\n"
            "mvin dram=0 stride=4 sp=0 rows=2 cols=4 relu=1\n")
    program = assemble(text, ARCH)
    assert disassemble(program, ARCH) == text
    assert [decode(encode(i)) for i in program] == program


@pytest.mark.parametrize("line,message", [
    ("unit unit=requantt mode=absmax rows=1", "unknown unit 'requantt'.*requant"),
    ("unit mode=absmax unit=requant rows=1", "give unit= before a mode name"),
    ("unit unit=requant mode=divide rows=1", "unknown mode 'divide'"),
    ("unit unit=quantizer mode=2 rows=1", r"quantizer unit has no mode 2 \(modes: groups, rows"),
    ("unit unit=dequant mode=term rows=2 cols=4 count=4", "count=4 names element 4"),
    ("unit unit=requant mode=rows src=60 rows=3 cols=4 count=2", "src=60 rows=6 reaches row 65"),
    ("unit unit=softmax mode=weights rows=1 cols=4 kv=2", "descriptor kv=2, the arch.* has 2"),
    ("unit unit=softmax mode=weights src=61 rows=2 cols=8", "src=61 rows=4 reaches row 64"),
    ("mvin dram=0 stride=4 sp=0 rows=1 cols=2 col=3", "cols=2 from element col=3, a row holds"
                                                       " 1..1"),
    ("unit unit=requant mode=operand src=60 rows=5 cols=4", "src=60 rows=5 reaches row 64"),
    ("unit unit=requant mode=operand dst=254 rows=5 cols=4", "dst=254 rows=5 reaches row 258"),
    ("unit unit=requant mode=wide rows=1 cols=5", "cols=5, a row holds 1..4"),
    ("unit unit=requant mode=operand rows=1 cols=4 arg=65536", "exceeds the requantizer's 16"),
    ("unit unit=normalizer mode=divide rows=1 cols=4 count=6", "count=6 denominator slices"),
    ("unit unit=normalizer mode=divide rows=4 cols=4 arg=62", "arg=62 rows=4 reaches row 65"),
])
def test_bad_unit_commands_are_rejected(line, message):
    with pytest.raises(ProgramError, match=message):
        assemble(line, ARCH)


def test_units_and_relu_must_be_present():
    gemmini = load_arch("examples/arch/gemmini_like.yaml")
    with pytest.raises(ProgramError, match="has no requant unit"):
        assemble("unit unit=requant mode=absmax rows=1", gemmini)
    with pytest.raises(ProgramError, match="no operand ReLU"):
        assemble("mvin dram=0 stride=16 sp=0 rows=1 cols=16 relu=1", gemmini)
    d = tiny_arch_dict("units")
    del d["units"]["requant"]
    with pytest.raises(ProgramError, match="no requant unit"):
        assemble("unit unit=normalizer mode=divide rows=1 shift=255", arch_from_dict(d))


def test_requant_modes_follow_golden():
    rng = np.random.default_rng(0)
    acc = rng.integers(-(1 << 31), 1 << 31, (6, 4)) >> rng.integers(0, 30, (6, 1))
    m = _machine(acc)
    m.run(assemble("unit unit=requant mode=absmax src=0 rows=3 cols=4\n"
                   "unit unit=requant mode=absmax src=3 rows=3 cols=4 arg=1\n"
                   "unit unit=requant mode=operand src=0 dst=10 rows=6 cols=4 arg=3 shift=255\n"
                   "unit unit=requant mode=wide src=0 dst=20 rows=6 cols=4 arg=40000 shift=9\n"
                   "unit unit=requant mode=slices src=0 dst=30 rows=6 cols=4\n", ARCH))
    s = max(int(np.abs(acc).max()).bit_length() - 7, 0)
    assert m.unit_state["pow2"] == s
    np.testing.assert_array_equal(m.scratchpad[10:16], saturate(round_shift_right(acc * 3, s), 8))
    np.testing.assert_array_equal(m.accumulator[20:26],
                                  saturate(round_shift_right(acc * 40000, 9), 32))
    parts = m.scratchpad[30:36]
    assert parts.min() >= 0 and parts.max() <= 127
    np.testing.assert_array_equal((parts << (7 * np.arange(4))).sum(axis=1),
                                  acc[:, 0] % (1 << 28))


def test_absmax_restarts_without_arg():
    acc = np.array([[1000, 0, 0, 0], [-5, 0, 0, 0]])
    m = _machine(acc)
    m.run(assemble("unit unit=requant mode=absmax src=0 rows=1 cols=4\n"
                   "unit unit=requant mode=absmax src=1 rows=1 cols=4\n", ARCH))
    assert m.unit_state == {"absmax": 5, "pow2": 0}


def test_normalizer_divides_by_the_combined_slices():
    rng = np.random.default_rng(1)
    num = rng.integers(-(1 << 20), 1 << 20, (5, 4))
    parts = rng.integers(0, 128, (5, 3))
    parts[0] = 0                                    # den = 0 -> out = 0
    acc = np.zeros((10, 4), np.int64)
    acc[:5], acc[5:, :3] = num, parts
    m = _machine(acc)
    m.run(assemble("unit unit=normalizer mode=divide src=0 dst=0 rows=5 cols=4 arg=5 count=3 "
                   "shift=2", ARCH))
    den = (parts << np.array([0, 7, 14])).sum(axis=1, keepdims=True)
    unit = ARCH.units.normalizer
    np.testing.assert_array_equal(m.accumulator[:5], normalize(
        num << 2, den, unit.out_frac_bits, unit.den_bits, unit.recip_frac_bits))
    assert not m.accumulator[0].any()


def test_every_unit_command_runs_on_the_rtl():
    """Every mode of every unit is in RTL_UNIT_MODES, so the RTL engines refuse no checked
    program; a unit command's cycles are the engine's 3 + rows x beats."""
    from flows.accel_engines import rtl_lacks
    from hw.front.accel_params import RTL_UNIT_MODES

    assert RTL_UNIT_MODES == UNIT_MODES
    program = assemble("unit unit=requant mode=rows src=0 dst=20 rows=3 cols=4 count=2 "
                       "arg=8", ARCH)
    assert rtl_lacks(program) is None
    absmax = assemble("unit unit=requant mode=absmax rows=1", ARCH)
    assert accel_timing(absmax, accel_params(ARCH)).cycles == 1 + 3 + 1 * \
        accel_params(ARCH).unit_beats("requant")


def test_every_move_runs_on_the_rtl():
    """mvin col= and acc=1 (plain and transposed) are no longer refused: the RTL executes
    them (tests/sim/test_accel_moves_pysim.py) and the cycle model has their cycles."""
    from flows.accel_engines import rtl_lacks

    for move in ("col=1", "acc=1", "col=2 acc=1 transpose=1", "col=1 transpose=1"):
        ins = assemble(f"mvin dram=0 stride=8 sp=0 rows=1 cols=2 {move}", ARCH)
        assert rtl_lacks(ins) is None
        assert accel_timing(ins, accel_params(ARCH)).cycles > 0


def test_requant_rows_follows_golden():
    from golden.svdquant_fixed import requantize_rows

    rng = np.random.default_rng(3)
    acc = rng.integers(-(1 << 24), 1 << 24, (6, 4)) >> rng.integers(0, 20, (6, 1))
    m = _machine(acc)
    m.run(assemble("unit unit=requant mode=rows src=0 dst=20 rows=3 cols=4 count=2 arg=8",
                   ARCH))
    shift, u = requantize_rows(np.concatenate([acc[:3], acc[3:]], axis=1), 8)
    np.testing.assert_array_equal(m.accumulator[8:11, 0], shift)
    np.testing.assert_array_equal(m.scratchpad[20:23], u[:, :4])
    np.testing.assert_array_equal(m.scratchpad[23:26], u[:, 4:])


def _f32(*values) -> list[int]:
    return [int(v) for v in np.asarray(values, np.float32).view(np.int32)]


def test_dequant_terms_and_their_order():
    from golden.group_dequant import accumulate_groups, encode_scale_products

    acc = np.zeros((12, 4), np.int64)
    acc[0:2, :2] = [[300, -7], [0, 5]]                  # dots of term 0 (2 rows, 2 lanes)
    acc[2:4, :2] = [[-4, 9], [1000, 2]]                 # dots of term 1
    acc[4:6, :2] = np.array([_f32(0.5, 3.0), _f32(0.25, 0.0)])   # row scales (terms 0, 1)
    acc[6, :2] = _f32(0.125, 2.0)                       # lane scales of term 0
    acc[7, :2] = _f32(1.5, 0.75)                        # lane scales of term 1
    m = _machine(acc)
    terms = ("src=4 dst=6 arg=0 count=0", "src=4 dst=7 arg=2 count=1")
    text = ["unit unit=dequant mode=clear rows=2 cols=2"]
    text += [f"unit unit=dequant mode=exponent rows=2 cols=2 {t}" for t in terms]
    text += [f"unit unit=dequant mode=term rows=2 cols=2 {t}" for t in terms]
    text += ["unit unit=dequant mode=output dst=9 rows=2 cols=2"]
    m.run(assemble("\n".join(text), ARCH))
    spec = ARCH.units.dequant.golden_spec()
    dots = np.stack([acc[0:2, :2], acc[2:4, :2]], axis=-1)
    sx = np.array([[0.5, 3.0], [0.25, 0.0]], np.float32)
    sw = np.array([[0.125, 1.5], [2.0, 0.75]], np.float32)
    total, lsb = accumulate_groups(dots, *encode_scale_products(sx, sw, spec), spec)
    want = np.ldexp(total.astype(np.float64), lsb).astype(np.float32)
    assert m.accumulator[9:11, :2].astype(np.int32).view(np.float32).tolist() == want.tolist()
    bad = _machine(acc)
    with pytest.raises(ProgramError, match="term before its exponent pass"):
        bad.run(assemble("\n".join(text[:2] + text[4:5]), ARCH))   # term 1 never scanned
    with pytest.raises(ProgramError, match="cleared for"):
        _machine(acc).run(assemble(text[0] + "\n" + text[1].replace("rows=2", "rows=1"), ARCH))


def test_moves_into_the_accumulator():
    m = Machine(ARCH, 64)
    m.write_dram(0, np.array([1.5, -2.0], np.float32).tobytes())
    m.run(assemble("mvin dram=0 stride=4 sp=5 rows=2 cols=1 acc=1", ARCH))
    assert m.accumulator[5:7, 0].astype(np.int32).view(np.float32).tolist() == [1.5, -2.0]
    with pytest.raises(ProgramError, match="relu=1 applies to operands"):
        assemble("mvin dram=0 stride=4 sp=5 rows=2 cols=1 acc=1 relu=1", ARCH)
    with pytest.raises(ProgramError, match="sp=63 rows=2 reaches row 64"):
        assemble("mvin dram=0 stride=4 sp=63 rows=2 cols=1 acc=1", ARCH)
