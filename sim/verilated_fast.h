// Cheaper signed-arithmetic helpers for fast Verilator builds (sim/fast.py appends an
// #include of this file to the model's precompiled header, after verilated.h).
//
// Verilator sign-extends with -(x & (1 << (lbits - 1))) | x, and its signed multiply
// sign-extends both operands that way again; GCC does not see through these, so every int8
// MAC of a generated array costs ~30 instructions. The versions below shift left and
// arithmetic-shift right, which GCC turns into one movsx, and multiply in uint32_t/uint64_t
// (no signed-overflow undefined behaviour). On a clean operand (every bit above lbits zero:
// Verilator's V3Clean guarantees that for the operand of a sign extension) each returns the
// same value as Verilator's function of the same name; tests/sim/test_verilated_fast.py
// checks that against Verilator's own definitions.
#ifndef LEGO_VERILATED_FAST_H_
#define LEGO_VERILATED_FAST_H_

#include "verilated.h"

static inline IData lego_extends_i(int lbits, IData lhs) VL_PURE {
    const int s = 32 - lbits;
    return static_cast<IData>(static_cast<int32_t>(lhs << s) >> s);
}
static inline QData lego_extends_q(int lbits, QData lhs) VL_PURE {
    const int s = 64 - lbits;
    return static_cast<QData>(static_cast<int64_t>(lhs << s) >> s);
}
static inline IData lego_muls_iii(int lbits, IData lhs, IData rhs) VL_PURE {
    return lego_extends_i(lbits, lhs) * lego_extends_i(lbits, rhs);
}
static inline QData lego_muls_qqq(int lbits, QData lhs, QData rhs) VL_PURE {
    return lego_extends_q(lbits, lhs) * lego_extends_q(lbits, rhs);
}

#ifndef LEGO_KEEP_VERILATOR_HELPERS
#define VL_EXTENDS_II(obits, lbits, lhs) lego_extends_i((lbits), (lhs))
#define VL_EXTENDS_QI(obits, lbits, lhs) lego_extends_q((lbits), (lhs))
#define VL_EXTENDS_QQ(obits, lbits, lhs) lego_extends_q((lbits), (lhs))
#define VL_MULS_III(lbits, lhs, rhs) lego_muls_iii((lbits), (lhs), (rhs))
#define VL_MULS_QQQ(lbits, lhs, rhs) lego_muls_qqq((lbits), (lhs), (rhs))
#endif

#endif  // LEGO_VERILATED_FAST_H_
