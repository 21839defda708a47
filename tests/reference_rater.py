"""A plain, per-row implementation of shared/RATING.md, written apart from the kernel.

It uses ``Decimal`` arithmetic and dictionaries, nothing vectorized, so that
property tests can compare the kernel against an independent reading of the
rules.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, localcontext
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class RefRate:
    prefix: str
    effective_from: int
    first_interval: int
    next_interval: int
    first_price: Decimal
    next_price: Decimal
    connect_fee: Decimal
    free_seconds: int
    grace_period: int
    surcharge: Decimal
    forbidden: bool
    discontinued: bool
    rate_id: int
    off_peak_first_price: Decimal | None = None
    off_peak_next_price: Decimal | None = None


@dataclass(frozen=True)
class RefTariff:
    currency: str
    decimals: int
    rate_unit: int
    rates: tuple[RefRate, ...]
    #: Off-peak windows: (weekdays with Monday 0, start second, end second); end <= start crosses midnight.
    timezone: str = "UTC"
    windows: tuple[tuple[frozenset[int], int, int], ...] = ()


def is_off_peak(tariff: RefTariff, when: int) -> bool:
    """RATING.md section 5, read directly: the local weekday and time against each window."""
    local = datetime.fromtimestamp(when, UTC).astimezone(ZoneInfo(tariff.timezone))
    weekday = local.weekday()
    second = local.hour * 3600 + local.minute * 60 + local.second
    for days, start, end in tariff.windows:
        if start < end:
            if weekday in days and start <= second < end:
                return True
        elif (weekday in days and second >= start) or ((weekday - 1) % 7 in days and second < end):
            return True
    return False


def normalize(cld: str | None) -> str | None:
    if cld is None:
        return None
    text = cld.replace(" ", "").replace("-", "")
    if text.startswith("+"):
        text = text[1:]
    elif text.startswith("00"):
        text = text[2:]
    if 1 <= len(text) <= 20 and text.isdigit() and text.isascii():
        return text
    return None


def rate_in_force(tariff: RefTariff, number: str, when: int) -> RefRate | None:
    """Longest existing prefix at ``when`` (RATING.md 1.2, 1.3)."""
    best: RefRate | None = None
    by_prefix: dict[str, RefRate] = {}
    for rate in tariff.rates:
        if rate.effective_from <= when:
            current = by_prefix.get(rate.prefix)
            if current is None or rate.effective_from > current.effective_from:
                by_prefix[rate.prefix] = rate
    for prefix, rate in by_prefix.items():
        if rate.discontinued or not number.startswith(prefix):
            continue
        if best is None or len(prefix) > len(best.prefix):
            best = rate
    return best


def price(
    rate: RefRate, usage: int, ghost: Decimal, decimals: int, unit: int, off_peak: bool = False
) -> tuple[int, Decimal]:
    """RATING.md section 3, step by step."""
    first_price, next_price = rate.first_price, rate.next_price
    if off_peak and rate.off_peak_first_price is not None:
        first_price = rate.off_peak_first_price
        next_price = rate.off_peak_next_price if rate.off_peak_next_price is not None else first_price
    with localcontext() as ctx:
        ctx.prec = 80
        d = usage if ghost == 0 else math.ceil(Decimal(usage) * (100 + ghost) / 100)
        if d <= rate.grace_period:
            return 0, Decimal(0)
        charged = max(d - rate.free_seconds, 0)
        if charged == 0:
            billed = 0
        else:
            billed = (
                rate.first_interval
                + math.ceil(Decimal(max(charged - rate.first_interval, 0)) / rate.next_interval)
                * rate.next_interval
            )
        raw = (
            rate.connect_fee
            + first_price * min(billed, rate.first_interval) / unit
            + next_price * max(billed - rate.first_interval, 0) / unit
        )
        amount = (raw * (100 + rate.surcharge) / 100).quantize(
            Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP
        )
        return billed, amount


@dataclass(frozen=True)
class RefResult:
    status: str
    reason: str | None
    prefix: str | None
    billed: int | None
    amount: Decimal | None


def rate_one(
    tariff: RefTariff | None,
    cld: str | None,
    when: int,
    usage: int | None,
    owner_known: bool,
    unknown_reason: str,
    ghost: Decimal = Decimal(0),
) -> RefResult:
    number = normalize(cld)
    reasons: list[str] = []
    if usage is None:
        reasons.append("bad_value")
    if not owner_known:
        reasons.append(unknown_reason)
    if number is None:
        reasons.append("invalid_number")
    if tariff is None:
        reasons.append("no_tariff")
    rate = rate_in_force(tariff, number, when) if tariff is not None and number is not None else None
    if tariff is not None and number is not None:
        if rate is None:
            reasons.append("no_rate")
        elif rate.forbidden:
            reasons.append("forbidden_destination")
    if reasons:
        order = [
            "bad_value",
            unknown_reason,
            "invalid_number",
            "no_tariff",
            "no_rate",
            "forbidden_destination",
        ]
        first = min(reasons, key=order.index)
        return RefResult("failed", first, rate.prefix if rate else None, None, None)
    assert tariff is not None and rate is not None and usage is not None
    off_peak = is_off_peak(tariff, when)
    billed, amount = price(rate, usage, ghost, tariff.decimals, tariff.rate_unit, off_peak)
    if amount.scaleb(9) >= 2**63:  # the ledger stores amounts as int64 nano-units (docs/rating.md)
        return RefResult("failed", "bad_value", rate.prefix, None, None)
    return RefResult("rated", None, rate.prefix, billed, amount)
