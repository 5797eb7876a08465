"""One builder (issue 33 item 7): the same pipeline written through each front end (emsqrt's
``Pipeline``, emsqrt's YAML, elytra's fluent ``Pipeline``, elytra's JSON spec) is the same
logical plan, and its rows are DuckDB's.

Every front end applies its steps through ``emsqrt.builder.PlanBuilder``; these tests would
catch one of them drifting again (as elytra's copy once named two quantiles alike).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml

import elytra
import emsqrt
from elytra.spec import build
from emsqrt import plan as lp
from emsqrt.planning import plan_to_json

from .conftest import norm, rows_of, write_parts

Emsqrt = Callable[[emsqrt.Pipeline, emsqrt.Pipeline], emsqrt.Pipeline]
Fluent = Callable[[elytra.Pipeline, elytra.Pipeline], elytra.Pipeline]


@dataclass(frozen=True)
class Case:
    """One pipeline in each front end's own spelling; ``dim`` is the second source."""

    api: Emsqrt
    yaml_steps: list[dict[str, Any]]  # after the scan; "DIM" stands for the dim scan
    fluent: Fluent
    json_steps: list[dict[str, Any]]  # "DIM" stands for the dim pipeline's JSON
    sql: str  # over views t and dim


QUANTILES = ["quantile_cont(v, 0.9)", "quantile_cont(v, 0.5)"]

CASES = {
    "filter_map_agg_sort_limit": Case(
        lambda p, d: (
            p.filter("v > 100")
            .map(x="v * 2")
            .aggregate(["k"], ["sum(x)", "count(*) AS n", *QUANTILES])
            .sort(["k"])
            .limit(5)
        ),
        [
            {"filter": "v > 100"},
            {"map": {"columns": {"x": "v * 2"}}},
            {"aggregate": {"group_by": ["k"], "aggs": ["sum(x)", "count(*) AS n", *QUANTILES]}},
            {"sort": ["k"]},
            {"limit": 5},
        ],
        lambda p, d: (
            p.filter("v > 100")
            .with_columns(x="v * 2")
            .group_by("k")
            .agg("sum(x)", "count(*) AS n", *QUANTILES)
            .sort("k")
            .limit(5)
        ),
        [
            {"filter": "v > 100"},
            {"with_columns": {"x": "v * 2"}},
            {"group_by": ["k"], "agg": ["sum(x)", "count(*) AS n", *QUANTILES]},
            {"sort": ["k"]},
            {"limit": 5},
        ],
        "SELECT k, sum(v * 2) AS sum_x, count(*) AS n, quantile_cont(v, 0.9) AS "
        "quantile_cont_v_0_9, quantile_cont(v, 0.5) AS quantile_cont_v_0_5 FROM t "
        "WHERE v > 100 GROUP BY k ORDER BY k LIMIT 5",
    ),
    "expression_over_aggregates": Case(
        lambda p, d: p.aggregate(["s"], ["max(v) - min(v) AS r", "avg(f)"]).sort(["s"]),
        [
            {"aggregate": {"group_by": "s", "aggs": ["max(v) - min(v) AS r", "avg(f)"]}},
            {"sort": "s"},
        ],
        lambda p, d: p.group_by("s").agg("max(v) - min(v) AS r", "avg(f)").sort("s"),
        [{"group_by": ["s"], "agg": ["max(v) - min(v) AS r", "avg(f)"]}, {"sort": ["s"]}],
        "SELECT s, max(v) - min(v) AS r, avg(f) AS avg_f FROM t GROUP BY s ORDER BY s",
    ),
    "select_rename_sort_nulls_first": Case(
        lambda p, d: p.select("k", "v AS value").sort(["value DESC NULLS FIRST", "k"]).limit(20),
        [
            {"project": ["k", "v AS value"]},
            {"sort": {"by": [{"column": "value", "descending": True, "nulls_first": True}, "k"]}},
            {"limit": {"n": 20}},
        ],
        lambda p, d: p.select("k", "v AS value").sort("value DESC NULLS FIRST", "k").limit(20),
        [{"select": ["k", "v AS value"]}, {"sort": ["value DESC NULLS FIRST", "k"]}, {"limit": 20}],
        "SELECT k, v AS value FROM t ORDER BY value DESC NULLS FIRST, k LIMIT 20",
    ),
    "left_join_then_aggregate": Case(
        lambda p, d: p.join(d, on=["k"], how="left").aggregate(["label"], ["sum(v) AS total"]),
        [
            {"join": {"right": "DIM", "on": "k", "how": "left"}},
            {"aggregate": {"group_by": ["label"], "aggs": ["sum(v) AS total"]}},
        ],
        lambda p, d: p.join(d, "k", how="left").group_by("label").agg("sum(v) AS total"),
        [
            {"join": "DIM", "on": ["k"], "how": "left"},
            {"group_by": ["label"], "agg": ["sum(v) AS total"]},
        ],
        "SELECT label, sum(v) AS total FROM t LEFT JOIN dim USING (k) GROUP BY label",
    ),
    "aggregated_column_resolves_to_its_output": Case(
        # "v" after the aggregate is sum_v, the one output that consumed it (emsqrt's rule,
        # now elytra's too: one builder)
        lambda p, d: p.aggregate(["k"], ["sum(v)"]).filter("v > 0").sort(["v DESC"]),
        [
            {"aggregate": {"group_by": ["k"], "aggs": ["sum(v)"]}},
            {"filter": "v > 0"},
            {"sort": "v DESC"},
        ],
        lambda p, d: p.group_by("k").agg("sum(v)").filter("v > 0").sort("v DESC"),
        [{"group_by": ["k"], "agg": ["sum(v)"]}, {"filter": "v > 0"}, {"sort": ["v DESC"]}],
        "SELECT k, sum(v) AS sum_v FROM t GROUP BY k HAVING sum(v) > 0 ORDER BY sum_v DESC",
    ),
}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("one_builder")
    fact = write_parts(root / "fact", parts=1, rows=3000) / "part0.parquet"
    dim = root / "dim.parquet"
    duckdb.sql(
        "SELECT i::INTEGER AS k, 'label' || (i % 3) AS label FROM range(0, 6) t(i)"
    ).write_parquet(str(dim))
    return fact, dim


def _plan(node: lp.Node) -> str:
    """The plan as JSON, each source (an elytra session names each read anew) named by the
    order it is met in."""
    names: dict[str, str] = {}

    def canonical(n: lp.Node) -> lp.Node:
        if isinstance(n, lp.Input):
            return lp.Input(names.setdefault(n.name, f"source{len(names)}"), n.schema)
        return lp.replace_children(n, tuple(canonical(c) for c in lp.children(n)))

    return plan_to_json(canonical(node))


def _yaml(case: Case, fact: Path, dim: Path) -> emsqrt.Pipeline:
    dim_steps = [{"scan": {"source": str(dim)}}]
    steps: list[Any] = [{"scan": {"source": str(fact)}}]
    for step in case.yaml_steps:
        if "join" in step:
            step = {"join": {**step["join"], "right": dim_steps}}
        steps.append(step)
    text = yaml.safe_dump({"steps": steps})  # through the YAML text, as a file would be
    return emsqrt.compile_pipeline(yaml.safe_load(text))


def _json(case: Case, fact: Path, dim: Path) -> dict[str, Any]:
    steps = [
        {**s, "join": {"source": {"parquet": str(dim)}}} if "join" in s else s
        for s in case.json_steps
    ]
    return {"source": {"parquet": str(fact)}, "steps": steps}


@pytest.mark.parametrize("name", list(CASES))
def test_every_front_end_builds_the_same_plan(
    name: str, files: tuple[Path, Path], session: elytra.Session
) -> None:
    case = CASES[name]
    fact, dim = files
    # emsqrt's API and its YAML over file scans
    api = case.api(emsqrt.Pipeline.scan(fact), emsqrt.Pipeline.scan(dim))
    assert _plan(_yaml(case, fact, dim).node) == _plan(api.node)
    # elytra's fluent API and its JSON spec over the session's sources; emsqrt's API over the
    # same leaves
    p, d = session.read_parquet(fact), session.read_parquet(dim)
    fluent = case.fluent(p, d)
    spec = build(_json(case, fact, dim), session, files=True)
    on_leaves = case.api(emsqrt.Pipeline(p.node), emsqrt.Pipeline(d.node))
    assert _plan(fluent.node) == _plan(on_leaves.node)
    assert _plan(spec.node) == _plan(fluent.node)
    # over lake datasets (which JSON can name), the JSON elytra writes builds the same plan
    p.write("fact")
    d.write("dim")
    lake = case.fluent(session.dataset("fact"), session.dataset("dim"))
    assert _plan(build(lake.to_spec(), session).node) == _plan(lake.node)
    json_steps = _json(case, fact, dim)["steps"]
    for step in json_steps:
        if "join" in step:
            step["join"] = {"source": {"dataset": "dim"}}
    written = build({"source": {"dataset": "fact"}, "steps": json_steps}, session)
    assert _plan(written.node) == _plan(lake.node)


@pytest.mark.parametrize("name", list(CASES))
def test_every_front_end_gives_duckdbs_rows(
    name: str, files: tuple[Path, Path], session: elytra.Session
) -> None:
    case = CASES[name]
    fact, dim = files
    con = duckdb.connect()
    con.execute(f"CREATE VIEW t AS SELECT * FROM '{fact}'")
    con.execute(f"CREATE VIEW dim AS SELECT * FROM '{dim}'")
    want = con.execute(case.sql)
    names = [c[0] for c in want.description]
    expected = rows_of(want.fetchall())
    ordered = "ORDER BY" in case.sql and "LIMIT" in case.sql

    def rows(table: Any) -> list[tuple[Any, ...]]:
        assert table.column_names == names
        got = [tuple(r.values()) for r in table.to_pylist()]
        return rows_of(got)

    api = case.api(emsqrt.Pipeline.scan(fact), emsqrt.Pipeline.scan(dim))
    fluent = case.fluent(session.read_parquet(fact), session.read_parquet(dim))
    for table in (
        api.collect(mem_cap="64MiB"),
        _yaml(case, fact, dim).collect(mem_cap="64MiB"),
        fluent.collect(),
        build(_json(case, fact, dim), session, files=True).collect(),
    ):
        assert rows(table) == expected
        if ordered:  # a sorted LIMIT (every column a sort key or unique): in order too
            in_order = [tuple(norm(v) for v in r.values()) for r in table.to_pylist()]
            assert in_order == [tuple(norm(v) for v in r) for r in con.execute(case.sql).fetchall()]


def test_two_quantiles_of_one_column_are_named_apart_everywhere(
    files: tuple[Path, Path], session: elytra.Session
) -> None:
    """The drift the review found: elytra's copy named both ``quantile_cont_v`` and failed."""
    fact, _ = files
    want = ["k", "quantile_cont_v_0_9", "quantile_cont_v_0_5"]
    assert emsqrt.Pipeline.scan(fact).aggregate(["k"], QUANTILES).schema.names == want
    assert session.read_parquet(fact).group_by("k").agg(*QUANTILES).columns == want


def test_a_builder_error_is_each_front_ends_own_kind(
    files: tuple[Path, Path], session: elytra.Session
) -> None:
    """The builder raises emsqrt's PlanError; elytra's front ends say PipelineError, with the
    same words; emsqrt's YAML adds the key path."""
    fact, _ = files
    with pytest.raises(emsqrt.PlanError, match=r"^agg: 'v' is not an aggregate"):
        emsqrt.Pipeline.scan(fact).aggregate(["k"], ["v"])
    with pytest.raises(elytra.PipelineError, match=r"^agg: 'v' is not an aggregate"):
        session.read_parquet(fact).group_by("k").agg("v")
    with pytest.raises(emsqrt.PlanError, match=r"^\[1\]\.aggregate: 'v' is not an aggregate"):
        emsqrt.compile_pipeline(
            [{"scan": str(fact)}, {"aggregate": {"group_by": ["k"], "aggs": ["v"]}}]
        )
    with pytest.raises(elytra.PipelineError, match=r"^limit: n and offset are integers"):
        build({"source": {"parquet": str(fact)}, "steps": [{"limit": -1}]}, session, files=True)
