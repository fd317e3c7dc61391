"""Analysis of sweep rows (:mod:`flows.sweep_pareto`): the Pareto front against its brute-force
definition, fronts per model and for the mix, dataflow choices, bandwidth sensitivity, errors."""

import math

import numpy as np
import pytest

from flows.sweep_pareto import (
    MIX,
    arch_label,
    area_metric,
    bandwidth_sensitivity,
    check_rows,
    dataflow_choices,
    fronts,
    mix_rows,
    pareto_front,
    varying_axes,
)


def brute_front(points):
    """Indices not dominated: no other point <= in both coordinates and different."""
    return {i for i, (x, y) in enumerate(points)
            if not any(px <= x and py <= y and (px, py) != (x, y) for px, py in points)}


def test_pareto_against_brute_force():
    rng = np.random.default_rng(17)
    for trial in range(400):
        n = int(rng.integers(0, 60))
        if trial % 3 == 0:                                # few values: many ties, duplicates
            pts = [tuple(map(int, p)) for p in rng.integers(0, 6, size=(n, 2))]
        elif trial % 3 == 1:
            pts = [tuple(map(float, p)) for p in rng.random((n, 2))]
        else:                                             # an anti-correlated cloud + copies
            xs = rng.random(n)
            pts = [(float(x), float(1 - x + 0.3 * rng.random())) for x in xs]
            pts += pts[: n // 4]
        front = pareto_front(pts)
        assert set(front) == brute_front(pts), pts
        assert len(front) == len(set(front))
        assert front == sorted(front, key=lambda i: (pts[i][0], i))   # by x, then index


def test_pareto_ties_and_duplicates():
    pts = [(1, 1), (1, 1), (2, 0), (0, 3), (1, 2), (0, 3), (3, 0)]
    assert pareto_front(pts) == [3, 5, 0, 1, 2]          # equal points all kept
    assert pareto_front([]) == []
    assert pareto_front([(5, 5)]) == [0]
    assert pareto_front(np.array([[1.0, 2.0], [2.0, 1.0], [2.0, 2.0]])) == [0, 1]
    line = [(float(i), float(1000 - i)) for i in range(1000)]
    assert pareto_front(line[::-1]) == list(range(999, -1, -1))


def test_pareto_large_is_fast():
    rng = np.random.default_rng(0)
    pts = rng.random((50_000, 2))
    front = pareto_front(pts)
    on = pts[front]
    assert np.all(np.diff(on[:, 0]) > 0) and np.all(np.diff(on[:, 1]) < 0)


@pytest.mark.parametrize("point, match", [
    ((1.0, math.nan), "point 1 y = nan is not a finite"),
    ((math.inf, 1.0), "point 1 x = inf is not a finite"),
    (("a", 1.0), "point 1 x = 'a' is not a number"),
    ((True, 1.0), "point 1 x = True is not a number"),
    ((1.0, 2.0, 3.0), r"point 1: \(1.0, 2.0, 3.0\) is not an \(x, y\) pair"),
    (7, "point 1: 7 is not an"),
])
def test_pareto_bad_points(point, match):
    with pytest.raises(ValueError, match=match):
        pareto_front([(0.0, 0.0), point])


def row(rid, model, array="8x8", spad=64, bw=None, *, cycles=100, energy=10.0, pes=None,
        area=None, util=0.5, flows=None, status="done", **extra):
    inputs = {"model": model, "base": "lego.yaml", "array": array, "scratchpad_kib": spad}
    if bw is not None:
        inputs["dram_bytes_per_cycle"] = bw
    side = int(array.split("x")[0])
    outputs = {"cycles": cycles, "energy_pj": energy, "pes": pes or side * side, "area": area,
               "utilization": util, "dataflows": flows or {"gemm": {"OS": 1}}, **extra}
    if status == "failed":
        return {"id": rid, "inputs": inputs, "status": "failed", "outputs": None,
                "error": "mapper failed", "seconds": 0.1}
    return {"id": rid, "inputs": inputs, "status": "done", "outputs": outputs, "error": None,
            "seconds": 1.0}


def sweep():
    """Two models on four architectures: (16x16, 256) fails for b, (32x32, 64) has no b row."""
    return [
        row("a1", "a", "8x8", 64, cycles=400, energy=40.0, util=0.9,
            flows={"gemm": {"WS": 2, "OS": 1}, "conv2d": {"IS": 1}}),
        row("a2", "a", "16x16", 64, cycles=100, energy=60.0, util=0.8,
            flows={"gemm": {"OS": 3}}),
        row("a3", "a", "16x16", 256, cycles=90, energy=70.0),
        row("a4", "a", "32x32", 64, cycles=95, energy=300.0),
        row("b1", "b", "8x8", 64, cycles=200, energy=20.0, util=0.3,
            flows={"gemm": {"OS": 2}, "conv2d": {"IS": 1, "WS": 1}}),
        row("b2", "b", "16x16", 64, cycles=150, energy=30.0, util=0.4,
            flows={"gemm": {"WS": 5}}),
        row("b3", "b", "16x16", 256, status="failed"),
    ]


def ids(rows):
    return [r["id"] for r in rows]


def test_fronts_per_model_and_mix():
    got = fronts(sweep())                                    # latency vs PEs (no area)
    assert list(got) == ["a", "b", MIX]
    assert ids(got["a"]) == ["a1", "a3"]       # a2: as many PEs as a3, more cycles; a4: more
    assert ids(got["b"]) == ["b1", "b2"]                     # the failed b3 is not a point
    assert ids(got[MIX]) == ["mix:a1+b1", "mix:a2+b2"]       # a3 (b3 failed), a4 (no b) out
    assert ids(fronts(sweep(), y="energy_pj")["a"]) == ["a1"]
    assert ids(fronts(sweep(), x="cycles", y="energy_pj")["a"]) == ["a3", "a2", "a1"]


def test_mix_aggregation():
    mix = {r["id"]: r for r in mix_rows(sweep())}
    assert sorted(mix) == ["mix:a1+b1", "mix:a2+b2"]
    m = mix["mix:a2+b2"]
    assert m["inputs"] == {"model": MIX, "base": "lego.yaml", "array": "16x16",
                           "scratchpad_kib": 64}
    out = m["outputs"]
    assert out["cycles"] == 250 and isinstance(out["cycles"], int)   # running each once
    assert out["energy_pj"] == 90.0 and out["pes"] == 256 and out["area"] is None
    assert out["utilization"] == pytest.approx((0.8 * 100 + 0.4 * 150) / 250)
    assert out["dataflows"] == {"gemm": {"OS": 3, "WS": 5}}
    assert mix["mix:a1+b1"]["outputs"]["dataflows"] == {
        "conv2d": {"IS": 2, "WS": 1}, "gemm": {"OS": 3, "WS": 2}}
    assert mix_rows([r for r in sweep() if r["inputs"]["model"] == "a"])[0]["id"] == "mix:a1"
    bad = sweep()
    bad[4]["outputs"]["area"] = 5.0
    with pytest.raises(ValueError, match="area differs between models"):
        mix_rows(bad)


def test_area_or_pes_proxy():
    rows = [row("p", "a", "8x8", cycles=10, area=900.0),
            row("q", "a", "16x16", cycles=5, area=100.0)]
    assert area_metric(rows) == "area"
    assert ids(fronts(rows)["a"]) == ["q"]                   # q: smaller area, fewer cycles
    rows[0]["outputs"]["area"] = None
    assert area_metric(rows) == "pes"                        # one missing: PEs for all
    assert ids(fronts(rows)["a"]) == ["p", "q"]


def test_dataflow_choices():
    front = fronts(sweep())[MIX]
    got = dataflow_choices(front)
    assert got.classes == ["conv2d", "gemm"]
    assert got.chosen == [{"conv2d": "IS", "gemm": "OS"}, {"gemm": "WS"}]  # OS 3 > WS 2
    assert got.counts == {"conv2d": {"IS": 2, "WS": 1}, "gemm": {"OS": 6, "WS": 7}}
    tie = [row("t", "a", flows={"gemm": {"WS": 2, "OS": 2, "IS": 0}, "none": {"OS": 0}})]
    assert dataflow_choices(tie).chosen == [{"gemm": "OS"}]          # tie: first name
    assert dataflow_choices(tie).counts == {"gemm": {"OS": 2, "WS": 2}}
    bare = row("u", "a")
    bare["outputs"]["dataflows"] = None
    assert dataflow_choices([bare]) == ([], [{}], {})
    bare["outputs"]["dataflows"] = {"gemm": {"OS": -1}}
    with pytest.raises(ValueError, match=r"row 'u': dataflows\['gemm'\]\['OS'\] = -1"):
        dataflow_choices([bare])


def test_bandwidth_sensitivity():
    assert bandwidth_sensitivity(sweep()) == {}                   # no bandwidth axis
    rows = [row(f"{m}{a}{bw}", m, a, 64, bw, cycles=1000 // bw + (500 if a == "8x8" else 0))
            for m in "ab" for a in ("8x8", "16x16") for bw in (16, 4, 8)]
    rows.append(row("c", "a", "32x32", 64, 8))                    # one bandwidth only: dropped
    assert bandwidth_sensitivity([r for r in rows if r["inputs"]["dram_bytes_per_cycle"] == 8
                                  ]) == {}                        # a single value
    got = bandwidth_sensitivity(rows)
    assert list(got) == ["a", "b", MIX]
    assert list(got["a"]) == ["array=8x8", "array=16x16"]         # varying axes only
    assert got["a"]["array=8x8"] == [(4.0, 750), (8.0, 625), (16.0, 562)]
    assert got[MIX]["array=16x16"] == [(4.0, 500), (8.0, 250), (16.0, 124)]
    rows[0]["inputs"]["dram_bytes_per_cycle"] = math.nan
    with pytest.raises(ValueError, match="dram_bytes_per_cycle = nan"):
        bandwidth_sensitivity(rows)


def test_axes_and_labels():
    rows = sweep()
    assert varying_axes(rows) == ["array", "scratchpad_kib"]
    assert arch_label(rows[0]["inputs"]) == "array=8x8, base=lego.yaml, scratchpad_kib=64"
    assert arch_label(rows[0]["inputs"], ["array"]) == "array=8x8"
    assert arch_label({"model": "a"}) == "(fixed)"


def bad(mutate):
    rows = sweep()
    mutate(rows)
    return rows


@pytest.mark.parametrize("rows, match", [
    (bad(lambda r: r.append(dict(r[0]))), "row 'a1': duplicate id"),
    (bad(lambda r: r.append({**r[1], "id": "z"})), "rows 'a2' and 'z' are the same point"),
    (bad(lambda r: r[0].update(status="running")), "row 'a1': status 'running' not in"),
    (bad(lambda r: r[0]["inputs"].update(model=MIX)), "model name 'mix' is reserved"),
    (bad(lambda r: r[0]["inputs"].pop("model")), "row 'a1': inputs .* lack a non-empty"),
    (bad(lambda r: r[0].update(outputs=None)), "row 'a1': done but outputs None"),
    (bad(lambda r: r[0].update(id=3)), "row 0: id 3 is not a non-empty string"),
    (bad(lambda r: r.append("x")), "row 7: 'x' is not a mapping"),
    ({"id": "a"}, "rows must be a list of row dicts"),
])
def test_bad_rows(rows, match):
    with pytest.raises(ValueError, match=match):
        check_rows(rows)
    with pytest.raises(ValueError, match=match):
        fronts(rows)


def test_bad_metrics():
    with pytest.raises(ValueError, match="unknown metric 'latency'; known: area, cycles"):
        fronts(sweep(), y="latency")
    rows = sweep()
    rows[1]["outputs"]["cycles"] = math.nan
    with pytest.raises(ValueError, match=r"row 'a2': outputs\['cycles'\] = nan is not a finite"):
        fronts(rows)
    rows[1]["outputs"]["cycles"] = None
    with pytest.raises(ValueError, match="row 'a2': outputs have no 'cycles'"):
        fronts(rows)
    rows[1]["outputs"]["cycles"] = "100"
    with pytest.raises(ValueError, match=r"row 'a2': outputs\['cycles'\] = '100' is not a num"):
        fronts(rows)


def test_input_order_does_not_matter():
    rows = sweep()
    assert fronts(rows[::-1]) == fronts(rows)
    assert mix_rows(rows[::-1]) == mix_rows(rows)
    assert ids(check_rows(rows[::-1])) == sorted(ids(rows))
