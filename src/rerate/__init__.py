"""rerate: rate telecom XDRs and correct them through an append-only ledger."""

from __future__ import annotations

__version__ = "0.1.0"
