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

from rerate.services.errors import LedgerBusyError


@contextmanager
def ledger_lock(home: Path, holder: str, *, wait_seconds: float = 30.0) -> Iterator[None]:
    path = home / "ledger.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = path.open("a+")
    deadline = time.monotonic() + wait_seconds
    try:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    handle.seek(0)
                    owner = handle.read().strip() or "another rerate process"
                    raise LedgerBusyError(f"the ledger is busy: {owner} holds its write lock") from None
                time.sleep(0.2)
        handle.seek(0)
        handle.truncate()
        handle.write(f"{holder} (pid {os.getpid()})")
        handle.flush()
        yield
    finally:
        handle.close()
