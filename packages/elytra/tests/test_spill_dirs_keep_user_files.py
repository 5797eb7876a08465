"""The spill directories' sweep never removes a user's files (break-tests of round 4 of the
sweep (``elytra/spilldirs.py``): a spill
directory the user chose may hold other files, which a new driver must never remove."""

from __future__ import annotations

from pathlib import Path

import pytest

import elytra


def test_a_user_spill_dir_keeps_a_directory_with_a_lock_file_beside_it(tmp_path: Path) -> None:
    mine = tmp_path / "scratch"
    (mine / "cache").mkdir(parents=True)
    (mine / "cache" / "model.bin").write_bytes(b"precious")
    (mine / ".cache.lock").write_bytes(b"")  # another tool's lock for cache/, not held now
    (mine / ".db.lock").write_bytes(b"")
    (mine / "notes.txt").write_text("hi")
    with elytra.connect(home=tmp_path / "home", backend="inline", spill_dir=mine, progress=False):
        pass
    assert (mine / "notes.txt").exists()
    assert (mine / "cache" / "model.bin").read_bytes() == b"precious"
    assert (mine / ".cache.lock").exists()
    assert (mine / ".db.lock").exists()


def test_env_spill_dir_keeps_a_users_dot_lock_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mine = tmp_path / "shared"
    mine.mkdir()
    (mine / ".deploy.lock").write_text("owner=alice\n")
    monkeypatch.setenv("ELYTRA_SPILL_DIR", str(mine))
    with elytra.connect(home=tmp_path / "home", backend="inline", progress=False):
        pass
    assert (mine / ".deploy.lock").read_text() == "owner=alice\n"
