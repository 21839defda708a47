"""The apply lock of a dry run: held by one holder at a time, and removed when let go."""

from __future__ import annotations

import fcntl
from pathlib import Path
from typing import TextIO

import pytest

from rerate.services.locks import FileLock


def test_a_lock_let_go_between_opening_and_locking_is_retaken_on_the_new_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The holder removes the file as it lets go.  A comer that opened the old file just before
    must lock the file now at the path, or a third comer would hold that new file's lock beside it."""
    path = tmp_path / "claims" / "dry-run-7.lock"
    first, comer = FileLock(path), FileLock(path)
    assert first.acquire("first")
    real_flock = fcntl.flock

    def let_go_first(handle: TextIO, operation: int) -> None:
        monkeypatch.setattr(fcntl, "flock", real_flock)
        first.release()  # after the comer opened the file, before it locks it
        real_flock(handle, operation)

    monkeypatch.setattr(fcntl, "flock", let_go_first)
    assert comer.acquire("comer")
    assert "comer" in comer.holder()
    third = FileLock(path)
    assert not third.acquire("third")  # the file at the path is the one held
    comer.release()
    assert not path.exists()
    assert third.acquire("third")
    third.release()


def test_a_busy_lock_names_its_holder(tmp_path: Path) -> None:
    path = tmp_path / "dry-run-8.lock"
    holder = FileLock(path)
    assert holder.acquire("apply of dry run 8 by ops")
    other = FileLock(path)
    assert not other.acquire("apply of dry run 8 by web")
    assert other.holder().startswith("apply of dry run 8 by ops (pid ")
    holder.release()
    assert other.acquire("apply of dry run 8 by web")
    other.release()
