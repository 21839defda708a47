"""Settings: one object, read from the environment (``RERATE_*``) and the CLI."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Where rerate keeps its data.

    Everything lives under one home directory.  The catalog defaults to a
    SQLite file in it and the ledger to ``<home>/ledger``.
    """

    model_config = SettingsConfigDict(env_prefix="RERATE_", extra="ignore")

    home: Path = Path("rerate-home")
    catalog_url: str | None = None
    ledger_path: Path | None = None
    #: Bytes of an XDR file read, rated and written together during ingest.
    ingest_chunk_mb: int = Field(32, ge=1)
    #: Memory DuckDB may use for set operations (duplicates, totals) before spilling.
    duckdb_memory_limit: str = "1GB"
    actor: str = "cli"
    #: The largest file the service accepts as an upload (XDR files, rate decks).
    max_upload_mb: int = Field(4096, ge=1)
    #: Outgoing mail: rate-import reports and CDR deliveries.
    smtp_host: str | None = None
    smtp_port: int = Field(587, ge=1, le=65535)
    #: ``starttls`` (port 587), ``ssl`` (port 465) or ``none`` (a relay on a trusted network);
    #: read from ``RERATE_SMTP_TLS`` (or the older ``RERATE_SMTP_SECURITY``).
    smtp_security: str = Field(
        "starttls",
        validation_alias=AliasChoices("RERATE_SMTP_TLS", "RERATE_SMTP_SECURITY", "smtp_security"),
    )
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_from: str = "rerate@localhost"
    #: Tries per message when the server answers "try again later" (4xx) or the connection fails.
    smtp_attempts: int = Field(4, ge=1)
    #: Wait before the second try; it doubles for each further one.
    smtp_backoff_seconds: float = Field(5.0, ge=0)
    smtp_timeout_seconds: float = Field(60.0, gt=0)
    #: Attachments larger than this are split into numbered parts, one e-mail each.
    delivery_max_attachment_mb: int = Field(10, ge=1)
    #: How far back a delivery run looks for missed periods and for corrected ones.
    delivery_lookback_days: int = Field(45, ge=1)

    @property
    def resolved_home(self) -> Path:
        return self.home.expanduser().resolve()

    @property
    def resolved_catalog_url(self) -> str:
        if self.catalog_url:
            return self.catalog_url
        return f"sqlite:///{self.resolved_home / 'catalog.sqlite'}"

    @property
    def resolved_ledger_path(self) -> Path:
        return (self.ledger_path or self.resolved_home / "ledger").expanduser().resolve()


def settings_problem(error: ValidationError) -> str:
    """What is wrong with the ``RERATE_*`` settings, one clause per variable, named as it is set."""
    problems = []
    for item in error.errors():
        name = str(item["loc"][0]) if item["loc"] else "a setting"
        variable = name if name.startswith("RERATE_") else f"RERATE_{name.upper()}"
        problems.append(f"{variable}={item.get('input')!r}: {item['msg'].lower()}")
    return "bad setting: " + "; ".join(problems)
