"""A finished job's JSON result for columns the lake accepts (lists of floats with NaN,
non-UTF-8 binary, wide decimals), checked against the uploaded data; an empty select is
refused. (Break-tests of round 4, /api/jobs through a real `platform up`.)"""

from __future__ import annotations

import decimal
import time

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from jobs_helpers import FINAL, bearer

from lake import Client
from platform_core import PlatformSettings, auth, load_settings

from .conftest import SharedPlatform


def _run(url: str, token: str, dataset: str, columns: list[str]) -> str:
    with httpx.Client(base_url=url, timeout=60) as http:
        pipeline = {"source": {"dataset": dataset}, "steps": [{"select": columns}]}
        r = http.post("/api/jobs", json={"pipeline": pipeline}, headers=bearer(token))
        assert r.status_code == 202, r.text
        job_id = r.json()["id"]
        deadline = time.monotonic() + 60
        while True:
            job = http.get(f"/api/jobs/{job_id}", headers=bearer(token)).json()
            if job["state"] in FINAL or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert job["state"] == "succeeded", job
        return str(job_id)


@pytest.fixture(scope="module")
def platform(
    jobs_platform: SharedPlatform, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, str]:
    p = jobs_platform  # the tests only run jobs on their own dataset: one platform will do
    signer = auth.signer(load_settings(PlatformSettings, home=p.home), create=False)
    alice = signer.issue("alice")
    path = tmp_path_factory.mktemp("break4-jobs") / "odd.parquet"
    pq.write_table(
        pa.table(
            {
                "id": [1, 2],
                "l": pa.array([[1.0, float("nan")], [float("inf")]], pa.list_(pa.float32())),
                "b": pa.array([b"\xff\xfe", b"ok"], pa.binary()),
                "dec": pa.array(
                    [decimal.Decimal("1234567890123456789012345678.0123456789"), None],
                    pa.decimal128(38, 10),
                ),
            }
        ),
        path,
    )
    with Client(p.url, alice) as client:
        client.upload(path, "odd")
    return p.url, alice


def test_json_result_of_a_list_column_with_nan(platform: tuple[str, str]) -> None:
    url, alice = platform
    job_id = _run(url, alice, "odd", ["id", "l"])
    with httpx.Client(base_url=url, timeout=60) as http:
        r = http.get(f"/api/jobs/{job_id}/result", headers=bearer(alice))
    assert r.status_code == 200, r.text
    assert r.json()["rows"] == [[1, [1.0, "NaN"]], [2, ["Infinity"]]]


def test_json_result_of_non_utf8_binary_is_not_a_500(platform: tuple[str, str]) -> None:
    url, alice = platform
    job_id = _run(url, alice, "odd", ["id", "b"])
    with httpx.Client(base_url=url, timeout=60) as http:
        r = http.get(f"/api/jobs/{job_id}/result", headers=bearer(alice))
    assert r.status_code < 500, r.text


def test_json_result_keeps_a_wide_decimal_exact(platform: tuple[str, str]) -> None:
    url, alice = platform
    job_id = _run(url, alice, "odd", ["id", "dec"])
    with httpx.Client(base_url=url, timeout=60) as http:
        r = http.get(f"/api/jobs/{job_id}/result", headers=bearer(alice))
        assert r.status_code == 200, r.text
        got = r.json()["rows"][0][1]
        csv = http.get(f"/api/jobs/{job_id}/result?format=csv", headers=bearer(alice)).text
    assert "1234567890123456789012345678.0123456789" in csv
    assert decimal.Decimal(str(got)) == decimal.Decimal("1234567890123456789012345678.0123456789")


def test_an_empty_select_is_refused(platform: tuple[str, str]) -> None:
    """A select of no columns is refused as bad input, naming the step (it used to run)."""
    url, alice = platform
    with httpx.Client(base_url=url, timeout=60) as http:
        pipeline = {"source": {"dataset": "odd"}, "steps": [{"select": []}]}
        r = http.post("/api/jobs", json={"pipeline": pipeline}, headers=bearer(alice))
    assert r.status_code == 400, r.text
    assert r.json()["type"] == "bad_input"
    assert "select" in r.json()["error"]
