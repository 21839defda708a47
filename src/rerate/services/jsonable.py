"""Values as JSON can carry them: money as exact decimal text, times as ISO 8601."""

from __future__ import annotations

from dataclasses import asdict, is_dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from rerate.domain.money import decimal_text


def plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return decimal_text(value)  # exact: money never goes through a float, nor exponent form
    if isinstance(value, datetime | date):
        return value.isoformat()
    if is_dataclass(value) and not isinstance(value, type):
        return {k: plain(v) for k, v in asdict(value).items()}
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value
