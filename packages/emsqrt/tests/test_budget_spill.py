"""The memory budget, spill segments (checksums, codecs, cleanup) and failure cleanup."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from oracle import KiB, assert_same_rows, input_node, make_table

from emsqrt import (
    CapTooSmallError,
    CorruptSpillError,
    EmsqrtError,
    Map,
    MemoryBudget,
    Sink,
    Sort,
    SortKey,
    SpillDiskFullError,
    SpillManager,
    run_batches,
)
from platform_core.expr import parse


def test_budget_refuses_past_the_cap_and_tracks_peaks() -> None:
    b = MemoryBudget(1000)
    g1 = b.try_acquire(600, "a")
    assert g1 is not None
    assert b.try_acquire(500, "b") is None
    assert b.try_acquire(300, "b", keep_free=200) is None
    with b.try_acquire(400, "b") as g2:  # type: ignore[union-attr]
        assert b.reserved == 1000
        assert not g2.try_grow(1)
    assert b.reserved == 600
    g1.release()
    assert b.reserved == 0
    assert b.peak == 1000
    assert b.peak_by_label == {"a": 600, "b": 400}
    with pytest.raises(CapTooSmallError, match="raise the cap to at least"):
        b.acquire(2000, "big")


def test_split_budgets_count_against_the_parent() -> None:
    parent = MemoryBudget(1000)
    a, b = parent.split(2)
    ga = a.try_acquire(500, "a")
    assert ga is not None
    assert a.try_acquire(1, "a") is None
    gb = b.try_acquire(500, "b")
    assert gb is not None
    assert parent.reserved == 1000
    ga.release()
    gb.release()
    assert parent.reserved == 0


@pytest.mark.parametrize("codec", ["lz4", "zstd"])
def test_spill_round_trip_and_cleanup(tmp_path: Path, codec: str) -> None:
    t = make_table({"rows": 3000, "keys": 100, "nulls": 0.1, "skew": False, "seed": 1})
    with SpillManager(tmp_path, codec) as spill:
        f = spill.create("test")
        for b in t.to_batches(max_chunksize=1000):
            f.append(b)
        assert len(f.segments) == 3
        assert_same_rows(pa.Table.from_batches(list(f)), t, ordered=True)
        assert spill.stats.bytes_written > 0
        assert spill.stats.bytes_read == spill.stats.bytes_written
        run_dir = spill.directory
        assert run_dir.parent == tmp_path
    assert not run_dir.exists()
    assert list(tmp_path.iterdir()) == []


def test_corrupted_segment_is_refused(tmp_path: Path) -> None:
    t = make_table({"rows": 3000, "keys": 100, "nulls": 0.1, "skew": False, "seed": 2})
    with SpillManager(tmp_path) as spill:
        f = spill.create("test")
        f.append(t.to_batches()[0])
        data = bytearray(f.path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        f.path.write_bytes(bytes(data))
        with pytest.raises(CorruptSpillError, match="failed its checksum"):
            f.read(0)
        f.path.write_bytes(bytes(data[:100]))
        with pytest.raises(CorruptSpillError, match="truncated"):
            f.read(0)


def test_error_mid_run_cleans_spill_and_leaves_no_output(spill_dir: Path, tmp_path: Path) -> None:
    """A run that fails after spilling (integer % 0 in a map above a spilled sort) removes its
    spill directory and writes no output file."""
    t = make_table({"rows": 8000, "keys": 50_000, "nulls": 0.0, "skew": False, "seed": 3})
    t = t.append_column("z", pa.array([1] * 7999 + [0], pa.int64()))
    out = tmp_path / "out.csv"
    plan = Sink(
        Map(Sort(input_node("t", t), (SortKey("s"),)), (("bad", parse("k % z")),)),
        str(out),
        "csv",
    )
    with pytest.raises(EmsqrtError.__mro__[1]) as info:  # PlatformError: the expression's error
        run_batches(plan, {"t": t}, 64 * KiB, spill_dir)
    assert "zero" in str(info.value).lower()
    assert not out.exists()
    assert list(tmp_path.glob(".out.csv*")) == []


def test_keyboard_interrupt_cleans_spill(spill_dir: Path) -> None:
    t = make_table({"rows": 8000, "keys": 50_000, "nulls": 0.0, "skew": False, "seed": 4})

    def interrupting() -> object:
        yield from t.to_batches(max_chunksize=500)[:10]
        raise KeyboardInterrupt

    from emsqrt import EngineConfig, Input, run
    from platform_core import Schema

    node = Input("t", Schema.from_arrow(t.schema))
    with pytest.raises(KeyboardInterrupt):
        run(
            Sort(node, (SortKey("s"),)),
            EngineConfig(mem_cap_bytes=64 * KiB, spill_dir=str(spill_dir)),
            inputs={"t": interrupting()},  # type: ignore[dict-item]
        )


def test_disk_full_names_the_spill_directory(
    spill_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ENOSPC from the OS while spilling becomes SpillDiskFullError; the run dir is removed."""
    import errno

    import emsqrt.spill

    real_open = open

    def full_disk(path: object, mode: str = "r", *a: object, **kw: object) -> object:
        if "a" in mode and str(path).endswith(".arrows"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_open(path, mode, *a, **kw)  # type: ignore[call-overload]

    monkeypatch.setattr(emsqrt.spill, "open", full_disk, raising=False)
    t = make_table({"rows": 8000, "keys": 50_000, "nulls": 0.0, "skew": False, "seed": 5})
    with pytest.raises(SpillDiskFullError, match=f"spill directory {spill_dir} is full"):
        run_batches(Sort(input_node("t", t), (SortKey("s"),)), {"t": t}, 64 * KiB, spill_dir)
