"""sim/verilated_fast.h: each helper equals Verilator's function of the same name on clean
operands (exhaustively for narrow widths, on edge and random values for wide ones)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from sim.fast import _HELPERS
from sim.toolchain import verilator_bin_dir

_CHECK_CPP = r"""
#define LEGO_KEEP_VERILATOR_HELPERS 1
#include "verilated_fast.h"
#include <cstdio>
#include <random>
#include <vector>

static unsigned long long checks = 0, bad = 0;
template <class T> static void same(const char* what, int lbits, T want, T got) {
    ++checks;
    if (want != got && bad++ < 10)
        std::printf("mismatch %s lbits=%d want=%llx got=%llx\n", what, lbits,
                    (unsigned long long)want, (unsigned long long)got);
}
static QData mask(int lbits) { return lbits == 64 ? ~0ULL : (1ULL << lbits) - 1; }
int main() {
    std::mt19937_64 rng(12345);
    for (int lbits = 1; lbits <= 64; ++lbits) {
        const QData m = mask(lbits), sign = 1ULL << (lbits - 1);
        std::vector<QData> xs = {0, 1, m, sign, sign - 1, sign + 1, m - 1};
        if (lbits <= 16) for (QData x = 0; x <= m; ++x) xs.push_back(x);
        else for (int i = 0; i < 20000; ++i) xs.push_back(rng() & m);
        for (QData x : xs) {
            x &= m;
            if (lbits <= 32) {
                same("EXTENDS_II", lbits, VL_EXTENDS_II(32, lbits, (IData)x),
                     lego_extends_i(lbits, (IData)x));
                same("EXTENDS_QI", lbits, VL_EXTENDS_QI(64, lbits, x), lego_extends_q(lbits, x));
            }
            same("EXTENDS_QQ", lbits, VL_EXTENDS_QQ(64, lbits, x), lego_extends_q(lbits, x));
        }
        const int pairs = lbits <= 8 ? (1 << (2 * lbits)) : 40000;
        for (int i = 0; i < pairs; ++i) {
            const QData a = (lbits <= 8 ? (QData)(i >> lbits) : rng()) & m;
            const QData b = (lbits <= 8 ? (QData)i : rng()) & m;
            if (lbits <= 32)
                same("MULS_III", lbits, VL_MULS_III(lbits, (IData)a, (IData)b),
                     lego_muls_iii(lbits, (IData)a, (IData)b));
            same("MULS_QQQ", lbits, VL_MULS_QQQ(lbits, a, b), lego_muls_qqq(lbits, a, b));
        }
    }
    std::printf("checks=%llu bad=%llu\n", checks, bad);
    return bad != 0;
}
"""


@pytest.fixture(scope="module")
def checker(tmp_path_factory):
    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        pytest.fail("no C++ compiler on PATH (the fast path needs one)")
    work = tmp_path_factory.mktemp("verilated_fast")
    src = work / "check.cpp"
    src.write_text(_CHECK_CPP)
    include = verilator_bin_dir().parent / "include"
    exe = work / "check"
    # -fwrapv: Verilator's reference multiplies in int32_t/int64_t; wrap-around made defined.
    subprocess.run([cxx, "-std=c++17", "-O1", "-fwrapv", f"-I{_HELPERS.parent}",
                    f"-I{include}", f"-I{include / 'vltstd'}", str(src), "-o", str(exe)],
                   check=True, capture_output=True, text=True)
    return exe


class TestVerilatedFast:
    def test_helpers_equal_verilators(self, checker):
        proc = subprocess.run([str(checker)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout
        checks = int(proc.stdout.split("checks=")[1].split()[0])
        assert checks > 1_000_000            # the exhaustive part ran

    def test_macros_replace_verilators_names(self):
        text = _HELPERS.read_text()
        for name in ("VL_EXTENDS_II", "VL_EXTENDS_QI", "VL_EXTENDS_QQ", "VL_MULS_III",
                     "VL_MULS_QQQ"):
            assert f"#define {name}(" in text
