"""Shared helpers for the benchmark scripts (never imported by rerate itself)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from pathlib import Path

    from rerate.bootstrap import App
    from rerate.services.worldgen import World

T = TypeVar("T")


def timed(function: Callable[[], T], repeat: int = 1) -> tuple[T, float]:
    """Result of the last run and the best wall time of ``repeat`` runs."""
    best = float("inf")
    result: T
    for _ in range(repeat):
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
    return result, best


def rate(n: int, seconds: float) -> str:
    per_second = n / seconds if seconds else float("inf")
    return f"{per_second / 1e6:.2f} M/s" if per_second >= 1e5 else f"{per_second / 1e3:.1f} k/s"


def compile_book(app: App) -> float:
    """Compile the home's tariff book now (seconds taken), as the first ingest after a tariff
    change would: the ingest figures then measure every later file, and this is printed apart."""
    from rerate.services.compiled import rating_context

    started = time.perf_counter()
    with app.catalog.reading() as session:
        rating_context(session, cache_dir=app.home / "cache")
    return time.perf_counter() - started


def world_home(home: Path, world: World) -> App:
    """A new home at ``home`` with the world's catalog (parties, tariffs) and no XDRs yet."""
    import shutil

    from rerate.bootstrap import bootstrap
    from rerate.services.demo import load_world
    from rerate.services.setup import initialize
    from rerate.settings import Settings

    shutil.rmtree(home, ignore_errors=True)
    app = bootstrap(Settings(home=home))
    initialize(app)
    load_world(app, world)
    return app
