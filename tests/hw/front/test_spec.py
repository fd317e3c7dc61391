import re
from dataclasses import replace

import pytest

from hw.front.spec import (
    DesignSpec,
    SpecError,
    TensorSpec,
    load_spec,
    parse_affine,
    spec_from_dict,
)

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


def fused(*flows, **top):
    """A fused spec over the GEMM of :func:`gemm`, one entry per dataflow mapping."""
    d = gemm(**top)
    del d["dataflow"]
    d["dataflows"] = list(flows)
    return d


OS_FLOW = {"name": "os", "space": ["i", "j"], "time": "i + j + k"}


class TestArithmetic:
    """Issue 12.1: types the MAC cannot compute exactly are rejected up front."""

    def _types(self, a, b, c):
        return gemm(**{"op.tensors.A.type": a, "op.tensors.B.type": b, "op.tensors.C.type": c})

    def test_unsigned_output_needs_unsigned_inputs(self):
        with pytest.raises(SpecError, match=r"op.tensors.C.type: the output C is unsigned "
                                            r"\(uint32\) but its inputs are A int8 and B int8"):
            spec_from_dict(self._types("int8", "int8", "uint32"))
        with pytest.raises(SpecError, match=r"B uint8; an unsigned output needs both inputs"):
            spec_from_dict(self._types("int8", "uint8", "uint32"))

    @pytest.mark.parametrize("types", [("uint8", "uint8", "uint32"), ("uint8", "uint8", "int32"),
                                       ("int8", "uint4", "int16")])
    def test_allowed_mixes(self, types):
        spec = spec_from_dict(self._types(*types))
        assert [str(t.dtype) for t in spec.op.tensors] == list(types)

    @pytest.mark.parametrize("types,msg", [
        (("int8", "int8", "int12"), r"C.type: int12 is too narrow: A \(int8\) x B \(int8\) "
                                    r"products need 16 bits"),
        (("uint8", "uint8", "uint16"), r"products need 17 bits"),
        (("int32", "int8", "int64"), r"A.type: int32 is too wide: MAC inputs are at most 16"),
    ])
    def test_widths_in_the_specs_words(self, types, msg):
        with pytest.raises(SpecError, match=msg):
            spec_from_dict(self._types(*types))


class TestFieldTypes:
    """Issue 12.2: every wrongly typed field is a SpecError naming its path and value."""

    @pytest.mark.parametrize("over,msg", [
        ({"dataflow.outer_order": 5}, r"^dataflow.outer_order must be a list, .*got 5$"),
        ({"dataflow.outer_order": [["i"], "j", "k"]},
         r"^dataflow.outer_order\[0\] must be a dim name, got \['i'\]$"),
        ({"dataflow.outer_order": "kji"}, r"^dataflow.outer_order must be a list, .*got 'kji'$"),
        ({"op.tensors.A": {"access": [[1, 0, 0], [0, 0, 1]], "offset": 0, "role": "input",
                           "type": "int8"}},
         r"^op.tensors.A.offset must be a list of 2 integers .*got 0$"),
        ({"op.tensors.A": {"access": [[1, 0, True], [0, 0, 1]], "role": "input",
                           "type": "int8"}}, r"^op.tensors.A.access row 0 must hold 3 integers"),
        ({"op.tensors.A.index": ["i", "k"]},
         r"^op.tensors.A.index must be a string of expressions .*got \['i', 'k'\]$"),
        ({"op.tensors.A.index": 3}, r"^op.tensors.A.index must be a string .*got 3$"),
        ({"op.tensors.A.type": 8}, r"^op.tensors.A.type must be a type name .*got 8$"),
        ({"op.tensors.A.role": ["input"]}, r"^op.tensors.A.role must be one of .*\['input'\]$"),
        ({"op.tensors.A": "i, k"}, r"^op.tensors.A must be a mapping .*got 'i, k'$"),
        ({"op.tensors": [1, 2]}, r"^op.tensors must map tensor names .*got \[1, 2\]$"),
        ({"op.dims": "i, j, k"}, r"^op.dims must map dim names to extents .*got 'i, j, k'$"),
        ({"op.dims": {"i": True, "j": 4, "k": 8}}, r"^op.dims.i must be a positive integer, "
                                                   r"got True$"),
        ({"op.dims": {"i": 4.0, "j": 4, "k": 8}}, r"^op.dims.i must be a positive integer"),
        ({"op": [1]}, r"^op must be a mapping .*got \[1\]$"),
        ({"array": 4}, r"^array must be a list, .*got 4$"),
        ({"array": [4, "4"]}, r"^array\[1\] must be a positive integer, got '4'$"),
        ({"dataflow": ["i", "j"]}, r"^dataflow must be a mapping .*got \['i', 'j'\]$"),
        ({"dataflow.name": 5}, r"^dataflow.name must be a string, got 5$"),
        ({"dataflow.space": "i, j"}, r"^dataflow.space must be a list, .*got 'i, j'$"),
        ({"dataflow.space": ["i", 1]}, r"^dataflow.space\[1\] must be an expression string "
                                       r".*got 1$"),
        ({"dataflow.time": 5}, r"^dataflow.time must be an expression string .*got 5$"),
        ({"dataflow.time": None}, r"^dataflow.time must be an expression string .*got None$"),
        ({"dataflow.tile": [4, 4, 8]}, r"^dataflow.tile must be a mapping .*got \[4, 4, 8\]$"),
        ({"dataflow.tile": {"k": "8"}}, r"^dataflow.tile.k must be a positive integer, "
                                        r"got '8'$"),
        ({"name": 5}, r"^name must be an identifier, got 5$"),
    ])
    def test_wrong_type(self, over, msg):
        with pytest.raises(SpecError, match=msg):
            spec_from_dict(gemm(**over))

    def test_not_a_mapping(self):
        from hw.front.spec import specs_from_dict

        with pytest.raises(SpecError, match="a spec must be a mapping .*got \\[1\\]"):
            specs_from_dict([1])
        with pytest.raises(SpecError, match="the spec is empty"):
            specs_from_dict(None)

    @pytest.mark.parametrize("flows,msg", [
        ([OS_FLOW, {**OS_FLOW, "name": "b", "outer_order": 5}],
         r"^dataflows\[1\]: dataflow.outer_order must be a list, .*got 5$"),
        ([7], r"^dataflows\[0\]: dataflow must be a mapping .*got 7$"),
        ([{**OS_FLOW, "op": {"dims": {"i": 4, "j": 4, "k": 8}, "tensors": {
            "A": {"index": ["i", "k"], "role": "input", "type": "int8"}}}}],
         r"^dataflows\[0\]: op.tensors.A.index must be a string"),
        ([{**OS_FLOW, "op": "gemm"}], r"^dataflows\[0\]: op must be a mapping .*got 'gemm'$"),
    ])
    def test_fused(self, flows, msg):
        from hw.front.spec import specs_from_dict

        with pytest.raises(SpecError, match=msg):
            specs_from_dict(fused(*flows))

    def test_fused_shared_op_errors_once_without_prefix(self):
        from hw.front.spec import specs_from_dict

        with pytest.raises(SpecError, match=r"^op.tensors.A.type must be a type name"):
            specs_from_dict(fused(OS_FLOW, **{"op.tensors.A.type": 8}))


class TestUnknownKeys:
    """Issue 12.3: an unknown key at any level is an error naming it and the closest key."""

    def _with(self, path, key, value):
        d = gemm()
        node = d
        for k in path:
            node = node[k]
        node[key] = value
        return d

    @pytest.mark.parametrize("path,key,msg", [
        ((), "arrays", r"^arrays: unknown key 'arrays'; did you mean 'array'\?"),
        (("dataflow",), "tiles", r"^dataflow.tiles: unknown key 'tiles'; did you mean 'tile'\?"),
        (("dataflow",), "outer-order",
         r"^dataflow.outer-order: unknown key 'outer-order'; did you mean 'outer_order'\?"),
        (("op",), "tensor", r"^op.tensor: unknown key 'tensor'; did you mean 'tensors'\?"),
        (("op", "tensors", "A"), "indx",
         r"^op.tensors.A.indx: unknown key 'indx'; did you mean 'index'\?"),
        (("op", "tensors", "A"), "dtype",
         r"^op.tensors.A.dtype: unknown key 'dtype'; did you mean 'type'\? \(known keys in "
         r"op.tensors.A: index, access, offset, role, type\)$"),
        ((), 7, r"^7: unknown key 7 \(known keys: name, op, array, dataflow, dataflows\)$"),
    ])
    def test_named_with_suggestion(self, path, key, msg):
        with pytest.raises(SpecError, match=msg):
            spec_from_dict(self._with(path, key, 1))

    def test_tiles_alone_is_not_the_default_design(self):
        d = gemm(**{"dataflow.tile": {"i": 2}})
        d["dataflow"]["tiles"] = d["dataflow"].pop("tile")
        with pytest.raises(SpecError, match="did you mean 'tile'"):
            spec_from_dict(d)

    def test_unknown_tile_dim_suggests(self):
        with pytest.raises(SpecError, match=r"dataflow.tile: unknown dim 'kk' .*did you mean 'k'"):
            spec_from_dict(gemm(**{"dataflow.tile": {"kk": 2}}))

    def test_in_fused_dataflows(self):
        from hw.front.spec import specs_from_dict

        with pytest.raises(SpecError, match=r"^dataflows\[0\]: dataflow.tiles: unknown key "
                                            r"'tiles'; did you mean 'tile'\?"):
            specs_from_dict(fused({**OS_FLOW, "tiles": {"i": 2}}))

    def test_index_and_access_and_offset(self):
        both = {"index": "i, k", "access": [[1, 0, 0], [0, 0, 1]], "role": "input",
                "type": "int8"}
        with pytest.raises(SpecError, match="either 'index' or 'access', not both"):
            spec_from_dict(gemm(**{"op.tensors.A": both}))
        stray = {"index": "i, k", "offset": [1, 0], "role": "input", "type": "int8"}
        with pytest.raises(SpecError, match=r"A.offset goes with 'access'"):
            spec_from_dict(gemm(**{"op.tensors.A": stray}))


class TestOutputIndex:
    """Issue 12.4: output indexes the generator cannot write completely fail in validation;
    every accepted one has exactly one home per output element (hw.front.images)."""

    @pytest.mark.parametrize("index,msg", [
        ("i + 1, j", r"axis 0 \(i \+ 1\) has an offset"),
        ("2*i, j", r"axis 0 \(2\*i\) has a stride \(coefficient 2 on i\)"),
        ("i, j + 2", r"axis 1 \(j \+ 2\) has an offset"),
        ("i, i + j", r"dim i indexes axes 0 and 1"),
        ("i, j, i", r"dim i indexes axes 0 and 2"),
    ])
    def test_rejected(self, index, msg):
        with pytest.raises(SpecError, match=rf"^op.tensors.C: output index {re.escape(repr(index))}"
                                            rf" is not supported: {msg}; each output axis"):
            spec_from_dict(gemm(**{"op.tensors.C.index": index}))

    def test_access_form_rejected_too(self):
        c = {"access": [[1, 0, 0], [0, 1, 0]], "offset": [0, 1], "role": "accumulate",
             "type": "int32"}
        with pytest.raises(SpecError, match=r"output index 'i, j \+ 1' is not supported"):
            spec_from_dict(gemm(**{"op.tensors.C": c}))

    @pytest.mark.parametrize("index,space", [("i, j", ["i", "j"]), ("j, i", ["i", "j"]),
                                             ("i + k, j", ["i", "j"]), ("i + k, j", ["k", "j"]),
                                             ("k, j", ["i", "j"])])
    def test_accepted_forms_are_written_completely(self, index, space):
        from hw.front.images import host_map
        from hw.front.plan import plan_array

        spec = spec_from_dict(gemm(**{"op.tensors.C.index": index, "op.dims.k": 4,
                                      "dataflow.space": space}))
        loc = host_map(plan_array(spec)).out_locations
        assert (loc[..., 0] >= 0).all()
        assert len({tuple(x) for x in loc.reshape(-1, 2)}) == loc.size // 2

    def test_sum_needs_its_dims_in_one_tile(self):
        over = {"op.tensors.C.index": "i + k, j", "op.dims.k": 4}
        spec = spec_from_dict(gemm(**over))
        msg = (r"^op.tensors.C: output axis 0 \(i \+ k\) adds dims, .*dim k has extent 8 and "
               r"tile 4; give k tile 8")
        with pytest.raises(SpecError, match=r"^--dims k=8: " + msg[1:]):
            spec.with_extents({"k": 8})
        with pytest.raises(SpecError, match=r"dim i has extent 4 and tile 2"):
            spec.with_tile({"i": 2})


class TestDesignSpecValidates:
    """Issue 12.7: DesignSpec and its parts validate on construction."""

    def test_no_source_field(self):
        from dataclasses import fields

        spec = spec_from_dict(gemm())
        assert [f.name for f in fields(spec)] == ["name", "op", "array", "dataflow"]
        assert not hasattr(spec, "source")

    @pytest.mark.parametrize("change,msg", [
        (lambda s: replace(s, array=(4, 4, 4)), r"array must be a list of 1 or 2"),
        (lambda s: replace(s, array=(4, 0)), r"array\[1\] must be a positive integer, got 0"),
        (lambda s: replace(s, name="a-b"), r"name must be an identifier"),
        (lambda s: replace(s, dataflow=replace(s.dataflow, tile=(4, 4))),
         r"dataflow.tile must have 3 entries \(one per dim: i, j, k\), got \[4, 4\]"),
        (lambda s: replace(s, dataflow=replace(s.dataflow, tile=(4, 0, 8))),
         r"dataflow.tile.j must be a positive integer, got 0"),
        (lambda s: replace(s, dataflow=replace(s.dataflow, outer_order=("i", "j", "j"))),
         r"outer_order must list every dim once \(i, j, k\), got \['i', 'j', 'j'\]"),
        (lambda s: replace(s, dataflow=replace(s.dataflow, space=((1, 0, 0),))),
         r"space has 1 rows but the array has 2 axes"),
        (lambda s: replace(s, dataflow=replace(s.dataflow, time=(1, 1))),
         r"dataflow.time must have 3 entries"),
        (lambda s: replace(s, op=replace(s.op, extents=(4, 4))), r"op.dims: expected 3 extents"),
        (lambda s: replace(s, op=replace(s.op, dims=("i", "i", "k"))),
         r"dim names must be distinct"),
        (lambda s: replace(s, op=replace(s.op, tensors=s.op.tensors[:2])),
         r"exactly 2 inputs and 1 accumulate"),
        (lambda s: replace(s, op=replace(s.op, tensors=(s.op.tensors[0],) * 2 + s.op.tensors[2:])),
         r"tensor names must be distinct"),
        (lambda s: replace(s.op.tensors[0], role="weight"), r"A.role must be one of"),
        (lambda s: replace(s.op.tensors[0], offset=(0,)), r"A.offset must have 2 entries"),
        (lambda s: replace(s.op.tensors[0], access=((1, 0), (0, 1))),
         r"A: access rows have 2 entries but there are 3 dims"),
    ])
    def test_invalid_replacements(self, change, msg):
        spec = spec_from_dict(gemm())
        with pytest.raises(SpecError, match=msg):
            result = change(spec)
            if not isinstance(result, DesignSpec):     # a part: rebuild the op around it
                replace(spec.op, tensors=(result, *spec.op.tensors[1:]))

    def test_lists_become_tuples(self):
        s = spec_from_dict(gemm())
        t = TensorSpec("X", [[1, 0, 0]], [0], "input", s.op.tensors[0].dtype)
        assert t.access == ((1, 0, 0),) and t.offset == (0,)
        assert hash(replace(s, array=[4, 4])) == hash(s)

    def test_with_tile_valid(self):
        s = spec_from_dict(gemm())
        assert s.with_tile({"k": 2}).dataflow.tile == (4, 4, 2)
        with pytest.raises(SpecError, match="tile.k must be a positive integer, got 0"):
            s.with_tile({"k": 0})
        with pytest.raises(SpecError, match="tile: unknown dim 'kk'.*did you mean 'k'"):
            s.with_tile({"kk": 2})


class TestWithExtents:
    """Issue 12.5: tiles larger than the new extents shrink to them."""

    def test_shrinks_tiles(self):
        s = load_spec("examples/gemm_os.yaml")           # 8x8x16, tile 4x4x16
        small = s.with_extents({"i": 1, "j": 1, "k": 1})
        assert small.op.extents == (1, 1, 1) and small.dataflow.tile == (1, 1, 1)
        assert s.with_extents({"i": 5, "k": 7}).dataflow.tile == (4, 4, 7)
        assert s.with_extents({"k": 64}).dataflow.tile == (4, 4, 16)   # larger: kept

    def test_small_problem_is_not_padded(self):
        from hw.front.plan import plan_array

        plan = plan_array(load_spec("examples/gemm_ws.yaml").with_extents({"i": 2, "k": 3}))
        assert plan.padded == (2, 8, 3) and plan.tile == (2, 4, 3)    # tile was 8 x 4 x 4

    def test_unknown_dim_suggests(self):
        with pytest.raises(SpecError, match=r"--dims: unknown dim 'kk' .*did you mean 'k'\?"):
            spec_from_dict(gemm()).with_extents({"kk": 3})


class TestLimits:
    """Issue 12.6: huge extents are a clear error, not a crash or a hang."""

    def test_extent(self):
        with pytest.raises(SpecError, match=r"^--dims: i = 100000000000 is too large: at most "
                                            r"2147483647 \(2\*\*31 - 1\)$"):
            spec_from_dict(gemm()).with_extents({"i": 10**11})
        with pytest.raises(SpecError, match=r"^op.dims.k = 2147483648 is too large"):
            spec_from_dict(gemm(**{"op.dims.k": 2**31}))

    def test_iterations_unlimited(self):
        """A 4096^3 GEMM is a valid spec (a mapper costs such layers); its tensors fit."""
        spec = spec_from_dict(gemm()).with_extents({"i": 4096, "j": 4096, "k": 4096})
        assert spec.op.extents == (4096, 4096, 4096)

    def test_tensor_elements(self):
        with pytest.raises(SpecError, match=r"op.tensors.A: 4194304 x 8 = 33554432 elements, "
                                            r"more than the maximum 16777216"):
            spec_from_dict(gemm()).with_extents({"i": 2**22})


class TestYamlFiles:
    """Issue 12.6: every file problem is one line naming the file (and line for YAML)."""

    @pytest.mark.parametrize("text,msg", [
        ("op: [unclosed\n", r"s.yaml:2:1: not valid YAML: expected ',' or '\]'"),
        ("name: a\nname: b\n", r"s.yaml:2:1: not valid YAML: duplicate key 'name' \(first "
                               r"given on line 1\)"),
        ("a: {i: 1, i: 2}\n", r"s.yaml:1:11: not valid YAML: duplicate key 'i'"),
        ("", r"s.yaml: the spec is empty"),
        ("- 1\n", r"s.yaml: a spec must be a mapping"),
        ("\tname: x\n", r"s.yaml:1:1: not valid YAML: found character '\\t'"),
    ])
    def test_one_line_naming_the_file(self, tmp_path, text, msg):
        from hw.front.spec import load_specs

        p = tmp_path / "s.yaml"
        p.write_text(text)
        with pytest.raises(SpecError, match=msg) as info:
            load_specs(p)
        assert "\n" not in str(info.value) and info.value.file == str(p)

    def test_not_utf8(self, tmp_path):
        p = tmp_path / "s.yaml"
        p.write_bytes(b"name: \xff\xfe\n")
        with pytest.raises(SpecError, match=r"cannot read spec .*s.yaml: not UTF-8 text"):
            load_spec(p)

    def test_in_file_names_once_and_keeps_the_class(self):
        from hw.front.fusion import FusionError
        from hw.front.spec import in_file

        named = in_file(FusionError("arrays differ"), "f.yaml")
        assert isinstance(named, FusionError) and str(named) == "f.yaml: arrays differ"
        assert in_file(named, "other.yaml") is named
