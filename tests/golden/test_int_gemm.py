import numpy as np
import pytest

from golden.int_gemm import AccumulatorOverflowError, check_range, int_gemm, random_operands
from golden.int_types import IntType, int_type


class TestIntType:
    @pytest.mark.parametrize("name,lo,hi", [("int4", -8, 7), ("uint4", 0, 15),
                                             ("int8", -128, 127), ("uint8", 0, 255),
                                             ("int32", -(2**31), 2**31 - 1)])
    def test_ranges(self, name, lo, hi):
        t = int_type(name)
        assert (t.min, t.max, t.name) == (lo, hi, name)

    @pytest.mark.parametrize("bad", ["int", "float8", "int0", "uint-4", ""])
    def test_bad_names(self, bad):
        with pytest.raises(ValueError, match="unknown integer type"):
            int_type(bad)

    def test_bad_bits(self):
        with pytest.raises(ValueError, match="bits must be"):
            IntType(0)


class TestIntGemm:
    @pytest.mark.parametrize("a_type,b_type", [("int8", "int8"), ("int4", "int4"),
                                               ("uint8", "int8"), ("uint4", "uint4")])
    @pytest.mark.parametrize("seed", [0, 1, 2])
    def test_matches_numpy(self, a_type, b_type, seed):
        a, b = random_operands(7, 33, 5, a_type, b_type, seed=seed)
        ref = a.astype(object) @ b.astype(object)  # Python ints: exact by construction
        np.testing.assert_array_equal(int_gemm(a, b, a_type, b_type), ref.astype(np.int64))

    def test_extremes_present(self):
        a, b = random_operands(3, 4, 3, "int4", "int4", seed=0)
        assert a.min() == -8 and a.max() == 7 and b.min() == -8 and b.max() == 7

    def test_extreme_product(self):
        a = np.full((1, 3), -128)
        b = np.full((3, 1), -128)
        assert int_gemm(a, b)[0, 0] == 3 * 16384

    def test_overflow_detected(self):
        # 2**31 / 16384 = 131072 terms of (-128)*(-128) reach exactly 2**31: one past int32 max.
        k = 131072
        a = np.full((1, k), -128, dtype=np.int8)
        b = np.full((k, 1), -128, dtype=np.int8)
        with pytest.raises(AccumulatorOverflowError, match="2147483648"):
            int_gemm(a, b)
        assert int_gemm(a, b, acc_bits=33)[0, 0] == 2**31

    def test_out_of_range_operand(self):
        with pytest.raises(ValueError, match="holds 8, outside int4"):
            int_gemm(np.array([[8]]), np.array([[1]]), "int4", "int4")

    def test_shape_errors(self):
        with pytest.raises(ValueError, match="inner dimensions"):
            int_gemm(np.zeros((2, 3), np.int8), np.zeros((4, 2), np.int8))
        with pytest.raises(ValueError, match="2-D"):
            int_gemm(np.zeros(3, np.int8), np.zeros((3, 2), np.int8))

    def test_float_rejected(self):
        with pytest.raises(ValueError, match="must hold integers"):
            check_range("a", np.zeros((2, 2)), int_type("int8"))
