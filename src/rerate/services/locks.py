"""The ledger's write lock: one writing job at a time per home directory.

An OS file lock (``flock``) is released by the kernel when its process dies,
so a crashed job never leaves the ledger locked.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from rerate.services.errors import LedgerBusyError


@contextmanager
def ledger_lock(
    home: Path, holder: str, *, wait_seconds: float = 30.0, name: str = "ledger"
) -> Iterator[None]:
    """Hold ``<home>/<name>.lock``: the ledger's write lock, or (``name="delivery"``) the delivery run's."""
    lock = FileLock(home / f"{name}.lock")
    if not lock.acquire(holder, wait_seconds=wait_seconds):
        what = "the ledger" if name == "ledger" else f"the {name} lock"
        raise LedgerBusyError(f"{what} is busy: {lock.holder()} holds it")
    try:
        yield
    finally:
        lock.release()


class FileLock:
    """An OS file lock held across calls, for as long as its holder works; removed on release.

    It tells a live holder from a dead one: the kernel releases a dead process's lock.  A lock
    taken on a file that its holder removed meanwhile is retaken on the file now at that path, so
    two holders never hold different files of the same name.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: TextIO | None = None

    def acquire(self, holder: str, *, wait_seconds: float = 0.0) -> bool:
        """Take the lock (waiting up to ``wait_seconds``) and write ``holder`` in it; False if busy."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + wait_seconds
        while True:
            handle = self.path.open("a+")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                if time.monotonic() >= deadline:
                    return False
                time.sleep(0.05)
                continue
            if _same_file(handle, self.path):
                break
            handle.close()  # its holder removed it as it let go: the lock is the new file's
        handle.seek(0)
        handle.truncate()
        handle.write(f"{holder} (pid {os.getpid()})")
        handle.flush()
        self._handle = handle
        return True

    def busy(self) -> bool:
        """Whether a live holder holds the lock now (looked at, not taken: nothing is written)."""
        try:
            handle = self.path.open("r")
        except FileNotFoundError:
            return False
        with handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(handle, fcntl.LOCK_UN)
            return False

    def holder(self) -> str:
        """Who holds the lock, as its holder wrote it."""
        try:
            text = self.path.read_text().strip()
        except FileNotFoundError:
            text = ""
        return text or "another rerate process"

    def release(self) -> None:
        if self._handle is not None:
            self.path.unlink(missing_ok=True)  # before letting go: a waiter then retakes a new file
            self._handle.close()
            self._handle = None


def _same_file(handle: TextIO, path: Path) -> bool:
    try:
        return os.fstat(handle.fileno()).st_ino == path.stat().st_ino
    except FileNotFoundError:
        return False
