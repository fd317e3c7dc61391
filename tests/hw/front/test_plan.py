import pytest

from hw.front.affine import determinant, integer_inverse, null_vectors
from hw.front.plan import _overlap, plan_array
from hw.front.spec import SpecError, load_spec, spec_from_dict

from .test_spec import gemm


def _plan(name):
    return plan_array(load_spec(f"examples/{name}.yaml"))


def _kinds(tree):
    return sorted({(v.kind, v.d_space, v.d_time) for v in tree.vectors})


class TestAffine:
    def test_inverse_and_det(self):
        t = ((1, 0, 0), (0, 1, 0), (1, 1, 1))
        assert determinant(t) == 1
        assert integer_inverse(t) == ((1, 0, 0), (0, 1, 0), (-1, -1, 1))
        with pytest.raises(ValueError, match="not integral"):
            integer_inverse(((2, 0), (0, 1)))

    def test_null_vectors(self):
        assert null_vectors(((1, 0, 0), (0, 0, 1)), 3) == [(0, 1, 0)]


class TestReuse:
    def test_output_stationary(self):
        p = _plan("gemm_os")
        a, b = p.inputs
        assert _kinds(a) == [("delay", (0, 1), 1)]       # A moves right one FU a cycle
        assert _kinds(b) == [("delay", (1, 0), 1)]       # B moves down
        assert p.output.vector.kind == "stationary"
        assert sorted(f for f, (par, _) in a.parent.items() if par is None) == [
            (i, 0) for i in range(4)]                    # A enters at column 0
        assert sorted(f for f, (par, _) in b.parent.items() if par is None) == [
            (0, j) for j in range(4)]

    def test_weight_stationary(self):
        p = _plan("gemm_ws")
        a, b = p.inputs
        assert _kinds(b) == [("stationary", (0, 0), 1)]
        assert all(par is None for par, _ in b.parent.values())   # every FU holds its own B
        assert p.output.vector.kind == "delay" and p.output.vector.d_space == (1, 0)
        writers = {s.root for s in p.streams if s.tensor == "C"}
        assert writers == {(3, j) for j in range(4)}             # sums leave the bottom row

    def test_input_stationary(self):
        p = _plan("gemm_is")
        assert _kinds(p.inputs[0]) == [("stationary", (0, 0), 1)]
        assert p.output.vector.d_space == (0, 1)

    def test_multicast(self):
        p = _plan("gemm_multicast")
        a, b = p.inputs
        assert {k for k, _, dt in _kinds(a)} == {"direct"}
        assert all(delay == 0 for _, delay in a.parent.values())
        assert len([f for f, (par, _) in a.parent.items() if par is None]) == 4  # one per row
        assert p.output.vector.kind == "stationary"


class TestBanks:
    def test_output_writers_share_banks(self):
        p = _plan("gemm_os")
        out = [b for b in p.banks if b.tensor == "C"]
        # 16 writers, one word each per tile; those on one anti-diagonal write together,
        # and the longest anti-diagonal of a 4x4 array has 4 FUs.
        assert len(out) == 4 and sum(len(b.members) for b in out) == 16
        for b in out:
            diagonals = [sum(p.streams[k].root) for k in b.members]
            assert len(set(diagonals)) == len(diagonals)

    def test_concurrent_inputs_do_not_share(self):
        p = _plan("gemm_os")
        assert [len(b.members) for b in p.banks if b.tensor in "AB"] == [1] * 8

    def test_read_modify_write_only_across_tiles(self):
        assert not _plan("gemm_os").accumulates_across_tiles    # k in one tile
        assert _plan("gemm_ws").accumulates_across_tiles        # k split into 2 tiles
        assert _plan("conv2d").accumulates_across_tiles         # r, s are outer loops


class TestTiming:
    def test_output_stationary_cycles(self):
        p = plan_array(spec_from_dict(gemm(**{"op.dims": {"i": 8, "j": 8, "k": 8},
                                              "dataflow.tile": {"i": 4, "j": 4}})))
        # one tile per 8 cycles (the reduction), 4 tiles; first-to-last activity: the read
        # issued one cycle early, 8 + 3 + 3 skewed compute cycles (the write-back read in the
        # last of them), the write-back commit.
        assert p.period == 8 and p.n_tiles == 4
        assert p.span == 1 + 8 + 3 + 3 + 1
        assert p.run_cycles == 3 * 8 + p.span

    def test_padding(self):
        p = plan_array(spec_from_dict(gemm(**{"op.dims": {"i": 5, "j": 7, "k": 3},
                                              "dataflow.tile": {"i": 4, "j": 4}})))
        assert p.padded == (8, 8, 3) and p.n_tiles_per_dim == (2, 2, 1)


class TestRejections:
    def test_unused_dim_collides(self):
        with pytest.raises(SpecError, match=r"dim 'k' has tile 8 .* k=0 and k=1 would share"):
            plan_array(spec_from_dict(gemm(**{"dataflow.time": "i + j"})))

    def test_not_invertible(self):
        with pytest.raises(SpecError, match=r"not invertible: iterations .* both map to FU"):
            plan_array(spec_from_dict(gemm(**{"dataflow.space": ["i + k", "j"],
                                              "dataflow.time": "i + j + k"})))

    def test_not_unimodular(self):
        with pytest.raises(SpecError, match="determinant 2; its inverse is not integral"):
            plan_array(spec_from_dict(gemm(**{"dataflow.space": ["2*i", "j"],
                                              "array": [8, 4]})))

    def test_outside_array(self):
        with pytest.raises(SpecError,
                           match=r"space\[0\] reaches FU coordinate 7 over .* \(size 4\)"):
            plan_array(spec_from_dict(gemm(**{"op.dims": {"i": 8, "j": 4, "k": 8}})))

    def test_negative_space(self):
        with pytest.raises(SpecError, match="reaches FU coordinate -3"):
            plan_array(spec_from_dict(gemm(**{"dataflow.space": ["i", "j - i"],
                                              "array": [4, 4]})))

    def test_two_reduction_directions(self):
        d = gemm(**{"op.dims": {"i": 4, "j": 4, "k": 4}})
        d["op"]["tensors"]["C"]["index"] = "i"
        with pytest.raises(SpecError, match="2 reduction directions inside one tile"):
            plan_array(spec_from_dict(d))


class TestPropertyPlans:
    """Structural invariants over many random space-time maps (cheap: no simulation)."""

    def test_invariants(self):
        from math import prod

        from hypothesis import HealthCheck, given, settings

        from hw.front.images import host_map

        from ..rtl.test_generate import _gemm_designs

        seen = {"ok": 0}

        @settings(max_examples=250, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(_gemm_designs())
        def check(design):
            try:
                plan = plan_array(spec_from_dict(design))
            except SpecError as exc:
                assert "reaches FU coordinate" in str(exc)   # the family's only rejection
                return
            seen["ok"] += 1
            # every tile iteration runs on exactly one FU in exactly one cycle
            assert sum(w.length for w in plan.fus.values()) == prod(plan.tile)
            assert all(w.length <= plan.period for w in plan.fus.values())
            # every output element is written to exactly one bank word (host_map checks)
            host_map(plan)
            # streams sharing a bank are never active in the same cycle; offsets tile the bank
            for bank in plan.banks:
                members = [plan.streams[k] for k in bank.members]
                for x, a in enumerate(members):
                    for b in members[x + 1:]:
                        assert not _overlap(a.window, b.window, plan.period)
                assert sum(m.depth for m in members) == bank.depth

        check()
        assert seen["ok"] > 200
