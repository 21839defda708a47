"""The one place that wires rerate together from :class:`~rerate.settings.Settings`.

Nothing connects at import time: entry points call :func:`bootstrap` and pass
the resulting :class:`App` to service functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rerate.catalog.database import Catalog, make_engine
from rerate.ledger.tables import Ledger
from rerate.settings import Settings


@dataclass
class App:
    settings: Settings
    catalog: Catalog
    ledger: Ledger

    @property
    def home(self) -> Path:
        return self.settings.resolved_home

    @property
    def actor(self) -> str:
        return self.settings.actor

    def close(self) -> None:
        self.catalog.engine.dispose()


def bootstrap(settings: Settings | None = None) -> App:
    settings = settings or Settings()
    home = settings.resolved_home
    home.mkdir(parents=True, exist_ok=True)
    catalog = Catalog(make_engine(settings.resolved_catalog_url))
    return App(settings=settings, catalog=catalog, ledger=Ledger(settings.resolved_ledger_path))
