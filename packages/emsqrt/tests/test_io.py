"""Scans and sinks on real files, compared with DuckDB reading the same files; bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from oracle import KiB, assert_same_rows, duck, make_table

from emsqrt import CapTooSmallError, EngineConfig, InputFileError, Pipeline, PlanError, run


@pytest.fixture
def data(tmp_path: Path) -> tuple[pa.Table, dict[str, Path]]:
    t = make_table({"rows": 6000, "keys": 500, "nulls": 0.1, "skew": False, "seed": 11})
    t = t.set_column(
        3,
        "v",
        pa.array(
            [None if x is None or x != x else x for x in t.column("v").to_pylist()], pa.float64()
        ),
    )
    paths = {
        "csv": tmp_path / "t.csv",
        "parquet": tmp_path / "t.parquet",
        "jsonl": tmp_path / "t.jsonl",
    }
    import pyarrow.csv as pcsv

    pcsv.write_csv(t, paths["csv"])
    pq.write_table(t, paths["parquet"], row_group_size=200)
    with open(paths["jsonl"], "w") as f:
        for row in t.to_pylist():
            f.write(json.dumps(row) + "\n")
    return t, paths


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
def test_scan_filter_aggregate_sort_matches_duckdb(
    spill_dir: Path, data: tuple[pa.Table, dict[str, Path]], fmt: str
) -> None:
    t, paths = data
    got = (
        Pipeline.scan(paths[fmt])
        .filter("g >= 0 AND s IS NOT NULL")
        .map(w="v * 2")
        .aggregate(["s"], ["COUNT(*)", "SUM(w)", "MAX(k) AS top"])
        .sort(["top DESC", "s"])
        .collect(128 * KiB, spill_dir=spill_dir)
    )
    want = duck(
        "SELECT s, count(*) AS count, sum(v * 2) AS sum_w, max(k) AS top FROM t "
        "WHERE g >= 0 AND s IS NOT NULL GROUP BY s ORDER BY top DESC, s",
        t=t,
    )
    assert_same_rows(got, want, ordered=True)


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
def test_sinks_write_what_duckdb_reads_back(
    spill_dir: Path, tmp_path: Path, data: tuple[pa.Table, dict[str, Path]], fmt: str
) -> None:
    t, paths = data
    out = tmp_path / f"out.{fmt}"
    r = (
        Pipeline.scan(paths["parquet"])
        .sort(["k", "s", "v"])
        .sink(out, fmt)
        .run(64 * KiB, spill_dir=spill_dir)
    )
    assert r.manifest.operator("sort").spilled_bytes > 0
    assert r.manifest.outputs[0]["rows"] == t.num_rows
    reader = {"csv": "read_csv", "parquet": "read_parquet", "jsonl": "read_json"}[fmt]
    back = duck(f"SELECT * FROM {reader}('{out}')")
    want = duck("SELECT * FROM t ORDER BY k, s, v", t=t)
    assert_same_rows(back.select(want.column_names), want)


def test_same_input_and_config_give_same_bytes_and_hash(
    spill_dir: Path, tmp_path: Path, data: tuple[pa.Table, dict[str, Path]]
) -> None:
    _, paths = data
    pipe = Pipeline.scan(paths["csv"]).aggregate(["k"], ["COUNT(DISTINCT s)", "AVG(v)"])
    results = [
        pipe.sink(tmp_path / f"o{i}.parquet").run(64 * KiB, spill_dir=spill_dir) for i in range(2)
    ]
    a, b = (r.manifest for r in results)
    assert a.plan_hash != ""
    assert a.spilled_bytes > 0
    assert (tmp_path / "o0.parquet").read_bytes() == (tmp_path / "o1.parquet").read_bytes()
    assert a.outputs[0]["sha256"] == b.outputs[0]["sha256"]
    same = pipe.sink(tmp_path / "o0.parquet")
    assert same.run(64 * KiB, spill_dir=spill_dir).manifest.plan_hash == a.plan_hash
    other_cap = same.run(128 * KiB, spill_dir=spill_dir).manifest.plan_hash
    assert other_cap != a.plan_hash


def test_malformed_csv_row_names_file_and_line(spill_dir: Path, tmp_path: Path) -> None:
    src = tmp_path / "bad.csv"
    src.write_text("a,b\n1,2\n3,4\n5\n6,7\n")
    out = tmp_path / "out.csv"
    cfg = EngineConfig(mem_cap_bytes=64 * KiB, spill_dir=str(spill_dir))
    pipe = Pipeline.scan(src, schema=[{"name": "a", "type": "i64"}, {"name": "b", "type": "i64"}])
    with pytest.raises(
        InputFileError, match=r"bad.csv: line 4 is malformed: expected 2 columns, found 1"
    ):
        run(pipe.sink(out).node, cfg)
    assert not out.exists()
    assert not list(tmp_path.glob(".out.csv*"))


def test_bad_value_and_missing_file(spill_dir: Path, tmp_path: Path) -> None:
    src = tmp_path / "bad.csv"
    src.write_text("a,b\n1,2\nx,4\n")
    pipe = Pipeline.scan(src, schema=[{"name": "a", "type": "i64"}, {"name": "b", "type": "i64"}])
    with pytest.raises(InputFileError, match=r"bad\.csv"):
        pipe.collect(64 * KiB, spill_dir=spill_dir)
    with pytest.raises(InputFileError, match="does not exist"):
        Pipeline.scan(tmp_path / "missing.csv")


def test_unknown_column_and_type_mismatch_fail_before_running(
    data: tuple[pa.Table, dict[str, Path]],
) -> None:
    _, paths = data
    with pytest.raises(PlanError, match=r'column "vv" not found; did you mean "v"\?'):
        Pipeline.scan(paths["parquet"]).filter("vv > 1")
    with pytest.raises(PlanError, match="filter"):
        Pipeline.scan(paths["parquet"]).filter("s > 1")
    with pytest.raises(PlanError, match=r'column "kk" not found'):
        Pipeline.scan(paths["parquet"]).sort(["kk"])


def test_parquet_row_group_larger_than_the_cap_is_refused_with_advice(
    spill_dir: Path, tmp_path: Path
) -> None:
    t = make_table({"rows": 20_000, "keys": 500, "nulls": 0.1, "skew": False, "seed": 12})
    pq.write_table(t, tmp_path / "big.parquet")  # one 20k-row row group
    with pytest.raises(CapTooSmallError, match=r"Parquet row group.*smaller row groups"):
        Pipeline.scan(tmp_path / "big.parquet").collect(64 * KiB, spill_dir=spill_dir)


def test_csv_null_spellings_are_values_as_duckdb_reads_them(
    spill_dir: Path, tmp_path: Path
) -> None:
    # Only empty fields are NULL in DuckDB's CSV reader: "NA" is a country code, "NULL" and
    # "N/A" are text, NaN/nan are floats. Arrow's defaults would read all of them as NULL.
    src = tmp_path / "nulls.csv"
    src.write_text(
        'cc,label,x,n\nUS,a,1.5,1\nNA,NULL,NaN,2\n,N/A,nan,\nFR,"",,4\nnull,#N/A,2.0,5\n'
    )
    got = Pipeline.scan(src).collect(64 * KiB, spill_dir=spill_dir)
    want = duck(f"SELECT * FROM read_csv('{src}')")
    assert got.schema.field("x").type == pa.float64()
    assert_same_rows(got, want, ordered=True)
    agg = (
        Pipeline.scan(src)
        .aggregate(["cc"], ["COUNT(label)", "COUNT(x)", "MAX(x) AS top"])
        .collect(64 * KiB, spill_dir=spill_dir)
    )
    want_agg = duck(
        f"SELECT cc, count(label) AS count_label, count(x) AS count_x, max(x) AS top "
        f"FROM read_csv('{src}') GROUP BY cc"
    )
    assert_same_rows(agg, want_agg)


def test_categorical_parquet_columns_are_read_as_their_values(
    tmp_path: Path, spill_dir: Path
) -> None:
    # Each file has its own dictionary (pandas' category columns): decoded by the scan, they
    # sort, group and union like the strings they are, as DuckDB reads them.
    from emsqrt import Aggregate, AggSpec, Scan, Sort, SortKey, Union
    from platform_core.expr import parse

    paths = []
    for i in range(2):
        c = pa.array([f"c{(j * 7 + i) % 30:02d}" for j in range(3000)]).dictionary_encode()
        pq.write_table(
            pa.table({"id": range(i * 3000, (i + 1) * 3000), "c": c}),
            tmp_path / f"{i}.parquet",
            row_group_size=700,
        )
        paths.append(str(tmp_path / f"{i}.parquet"))
    both = Union(tuple(Scan(p, "parquet") for p in paths))
    cfg = EngineConfig(mem_cap_bytes=256 * KiB, spill_dir=str(spill_dir))
    grouped = run(Aggregate(both, ("c",), (AggSpec("n", parse("count(*)")),)), cfg).table
    ordered = run(Sort(both, (SortKey("c"), SortKey("id"))), cfg).table
    assert grouped is not None
    assert ordered is not None
    assert ordered.schema.field("c").type == pa.string()
    files = f"'{tmp_path}/*.parquet'"
    assert_same_rows(grouped, duck(f"SELECT c, count(*) AS n FROM {files} GROUP BY c"))
    assert_same_rows(ordered, duck(f"SELECT id, c FROM {files} ORDER BY c, id"), ordered=True)
