import pytest

from hw.front.spec import SpecError, load_spec, parse_affine, spec_from_dict

DIMS = ("i", "j", "k")


def gemm(**over):
    d = {
        "name": "g",
        "op": {"dims": {"i": 4, "j": 4, "k": 8}, "tensors": {
            "A": {"index": "i, k", "role": "input", "type": "int8"},
            "B": {"index": "k, j", "role": "input", "type": "int8"},
            "C": {"index": "i, j", "role": "accumulate", "type": "int32"}}},
        "array": [4, 4],
        "dataflow": {"space": ["i", "j"], "time": "i + j + k"},
    }
    for path, value in over.items():
        node = d
        keys = path.split(".")
        for k in keys[:-1]:
            node = node[k]
        node[keys[-1]] = value
    return d


class TestParseAffine:
    @pytest.mark.parametrize("text,coef,const", [
        ("i", (1, 0, 0), 0), ("i + j + k", (1, 1, 1), 0), ("2*i - k + 3", (2, 0, -1), 3),
        ("j+j", (0, 2, 0), 0), ("-i", (-1, 0, 0), 0), ("5", (0, 0, 0), 5), ("3 k", (0, 0, 3), 0),
    ])
    def test_parses(self, text, coef, const):
        assert parse_affine(text, DIMS, "x") == (coef, const)

    @pytest.mark.parametrize("text,msg", [("i + q", "unknown dim 'q'"), ("i j", "missing '\\+'"),
                                          ("i +", "dangling sign"), ("", "expected an affine"),
                                          ("i * j", "cannot parse")])
    def test_errors(self, text, msg):
        with pytest.raises(SpecError, match=msg):
            parse_affine(text, DIMS, "where")


class TestSpecFromDict:
    def test_gemm(self):
        s = spec_from_dict(gemm())
        assert s.op.dims == DIMS and s.op.extents == (4, 4, 8)
        a, b = s.op.inputs
        assert a.access == ((1, 0, 0), (0, 0, 1)) and b.access == ((0, 0, 1), (0, 1, 0))
        assert s.dataflow.space == ((1, 0, 0), (0, 1, 0)) and s.dataflow.time == (1, 1, 1)
        assert s.dataflow.tile == (4, 4, 8)            # default tile: the whole problem

    def test_access_matrix_form(self):
        s = spec_from_dict(gemm(**{"op.tensors.A": {"access": [[1, 0, 0], [0, 0, 1]],
                                                     "role": "input", "type": "int4"}}))
        assert s.op.inputs[0].access == ((1, 0, 0), (0, 0, 1))
        assert s.op.inputs[0].dtype.bits == 4

    @pytest.mark.parametrize("over,msg", [
        ({"op.tensors.A": {"access": [[1, 0], [0, 1]], "role": "input", "type": "int8"}},
         r"A.access row 0 must hold 3 integers"),
        ({"op.tensors.A": {"index": "i, q", "role": "input", "type": "int8"}},
         r"unknown dim 'q'"),
        ({"op.tensors.A": {"index": "i, k", "role": "weight", "type": "int8"}},
         r"A.role must be one of"),
        ({"op.tensors.A": {"index": "i, k", "role": "input", "type": "float8"}},
         r"A.type: unknown integer type 'float8'"),
        ({"op.tensors.B": {"index": "k, j", "role": "accumulate", "type": "int32"}},
         r"exactly 2 inputs and 1 accumulate"),
        ({"array": [4, 4, 4]}, r"array must be a list of 1 or 2"),
        ({"array": [4, 0]}, r"array\[1\] must be a positive integer, got 0"),
        ({"dataflow.space": ["i"]}, r"space has 1 rows but the array has 2 axes \(4x4\)"),
        ({"dataflow.time": "i + j + k + 1"}, r"constant offsets are not allowed"),
        ({"dataflow.tile": {"z": 2}}, r"tile: unknown dim 'z'"),
        ({"dataflow.outer_order": ["i", "j"]}, r"outer_order must list every dim once"),
        ({"op.dims": {"i": 0, "j": 4, "k": 8}}, r"op.dims.i must be a positive integer, got 0"),
        ({"name": "my-design"}, r"name must be an identifier"),
    ])
    def test_errors(self, over, msg):
        with pytest.raises(SpecError, match=msg):
            spec_from_dict(gemm(**over))

    def test_with_extents(self):
        s = spec_from_dict(gemm()).with_extents({"i": 7})
        assert s.op.extents == (7, 4, 8)
        with pytest.raises(SpecError, match="unknown dim 'x'"):
            s.with_extents({"x": 3})
        with pytest.raises(SpecError, match="k must be a positive integer, got 0"):
            s.with_extents({"k": 0})


class TestLoadSpec:
    def test_examples_load(self):
        from pathlib import Path

        from hw.front.spec import load_specs

        names = sorted(p.stem for p in Path("examples").glob("*.yaml"))
        assert {"gemm_os", "gemm_ws", "gemm_is", "gemm_multicast", "batched_gemm",
                "conv2d", "gemm_fused"} <= set(names)
        for n in names:
            assert {s.name for s in load_specs(Path("examples") / f"{n}.yaml")} == {n}
        with pytest.raises(SpecError, match="missing 'dataflow'"):
            load_spec("examples/gemm_fused.yaml")       # several dataflows: load_specs

    def test_missing_file(self, tmp_path):
        with pytest.raises(SpecError, match="cannot read spec"):
            load_spec(tmp_path / "none.yaml")

    def test_bad_yaml(self, tmp_path):
        p = tmp_path / "bad.yaml"
        p.write_text("op: [unclosed")
        with pytest.raises(SpecError, match="not valid YAML"):
            load_spec(p)

    def test_error_names_file(self, tmp_path):
        p = tmp_path / "x.yaml"
        p.write_text("name: x\narray: [2, 2]\n")
        with pytest.raises(SpecError, match=r"x.yaml: spec: missing 'op'"):
            load_spec(p)


class TestSpecsFromDict:
    def test_fused_example(self):
        from hw.front.spec import load_specs

        specs = load_specs("examples/gemm_fused.yaml")
        assert [s.dataflow.name for s in specs] == ["output_stationary", "weight_stationary",
                                                    "input_stationary"]
        assert {s.name for s in specs} == {"gemm_fused"} and specs[0].op == specs[1].op

    def test_single_is_a_list_of_one(self):
        from hw.front.spec import specs_from_dict

        assert len(specs_from_dict(gemm())) == 1

    @pytest.mark.parametrize("flows,msg", [
        ([], "dataflows must be a non-empty list"),
        ([{"name": "a", "space": ["i", "j"], "time": "i + j + k"},
          {"name": "a", "space": ["i", "j"], "time": "k"}], "distinct names"),
        ([{"name": "a", "space": ["i"], "time": "k"}], r"dataflows\[0\]: dataflow.space has 1"),
    ])
    def test_errors(self, flows, msg):
        from hw.front.spec import specs_from_dict

        d = gemm()
        del d["dataflow"]
        d["dataflows"] = flows
        with pytest.raises(SpecError, match=msg):
            specs_from_dict(d)

    def test_both_keys(self):
        from hw.front.spec import specs_from_dict

        with pytest.raises(SpecError, match="either 'dataflow' or 'dataflows'"):
            specs_from_dict({**gemm(), "dataflows": []})
