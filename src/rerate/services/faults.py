"""Crash points for tests of atomicity.

A job calls :func:`checkpoint` between its writes.  When the environment
variable ``RERATE_CRASH_AT`` names that checkpoint, the process dies on the
spot, as a power cut or ``kill -9`` would leave it: no cleanup, no handlers.
"""

from __future__ import annotations

import os

CRASH_EXIT_CODE = 86


def checkpoint(name: str) -> None:
    if os.environ.get("RERATE_CRASH_AT") == name:
        os._exit(CRASH_EXIT_CODE)
