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
def ledger_lock(
    home: Path, holder: str, *, wait_seconds: float = 30.0, name: str = "ledger"
) -> Iterator[None]:
    """Hold ``<home>/<name>.lock``: the ledger's write lock, or (``name="delivery"``) the delivery run's."""
    path = home / f"{name}.lock"
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
                    what = "the ledger" if name == "ledger" else f"the {name} lock"
                    raise LedgerBusyError(f"{what} is busy: {owner} holds it") from None
                time.sleep(0.2)
        handle.seek(0)
        handle.truncate()
        handle.write(f"{holder} (pid {os.getpid()})")
        handle.flush()
        yield
    finally:
        handle.close()
