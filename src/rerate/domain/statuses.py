"""XDR statuses and failure reasons, with the precedence of shared/RATING.md section 6."""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    RATED = "rated"
    FAILED = "failed"
    VOIDED = "voided"


class Reason(StrEnum):
    BAD_VALUE = "bad_value"
    UNKNOWN_ACCOUNT = "unknown_account"
    UNKNOWN_VENDOR = "unknown_vendor"
    INVALID_NUMBER = "invalid_number"
    NO_TARIFF = "no_tariff"
    NO_RATE = "no_rate"
    FORBIDDEN_DESTINATION = "forbidden_destination"


#: When several reasons apply, the first of these is reported (RATING.md 6).
CUSTOMER_PRECEDENCE: tuple[Reason, ...] = (
    Reason.BAD_VALUE,
    Reason.UNKNOWN_ACCOUNT,
    Reason.INVALID_NUMBER,
    Reason.NO_TARIFF,
    Reason.NO_RATE,
    Reason.FORBIDDEN_DESTINATION,
)
VENDOR_PRECEDENCE: tuple[Reason, ...] = (
    Reason.BAD_VALUE,
    Reason.UNKNOWN_VENDOR,
    Reason.INVALID_NUMBER,
    Reason.NO_TARIFF,
    Reason.NO_RATE,
    Reason.FORBIDDEN_DESTINATION,
)
