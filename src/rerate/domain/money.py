"""Exact money: decimals at the edges, scaled integers inside the kernel.

Every price, fee and amount inside rerate is either a ``Decimal`` or an integer
count of nano-units (1e-9 of the currency unit).  Binary floats never hold money
(shared/RATING.md section 3).

>>> to_nanos(Decimal("0.0125"))
12500000
>>> from_nanos(12500000)
Decimal('0.012500000')
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

#: Scale of every money value in the kernel and the ledger: 9 decimal places.
MONEY_DECIMALS = 9
NANOS = 10**MONEY_DECIMALS
#: Surcharge percentages are kept with 4 decimal places (``2.5`` -> 25000).
PERCENT_DECIMALS = 4
PERCENT_SCALE = 10**PERCENT_DECIMALS


class MoneyError(ValueError):
    """A value that cannot be represented exactly as rerate money."""


def parse_decimal(text: str | Decimal | int, *, field: str = "value") -> Decimal:
    """Parse a decimal from text, refusing floats' lookalikes such as NaN or 1e400."""
    if isinstance(text, Decimal):
        value = text
    elif isinstance(text, int):
        value = Decimal(text)
    else:
        cleaned = text.strip()
        if not cleaned:
            raise MoneyError(f"{field} is empty")
        try:
            value = Decimal(cleaned)
        except InvalidOperation as exc:
            raise MoneyError(f"{field} is not a decimal number: {text!r}") from exc
    if not value.is_finite():
        raise MoneyError(f"{field} is not a finite number: {text!r}")
    return value


def to_scaled(value: Decimal, decimals: int, *, field: str = "value") -> int:
    """Scale ``value`` to an integer with ``decimals`` places, refusing any loss."""
    scaled = value.scaleb(decimals)
    if scaled != scaled.to_integral_value():
        raise MoneyError(f"{field} {value:f} has more than {decimals} decimal places")
    return int(scaled)


def to_nanos(value: Decimal, *, field: str = "value") -> int:
    """Money as an exact count of nano-units."""
    return to_scaled(value, MONEY_DECIMALS, field=field)


def from_nanos(nanos: int) -> Decimal:
    """Nano-units back to a ``Decimal`` with 9 places."""
    return Decimal(nanos).scaleb(-MONEY_DECIMALS)


def percent_to_scaled(value: Decimal, *, field: str = "percent") -> int:
    """A percentage such as ``2.5`` as an integer with 4 places (``25000``)."""
    return to_scaled(value, PERCENT_DECIMALS, field=field)


def round_half_up(value: Decimal, decimals: int) -> Decimal:
    """Round once, half away from zero, as shared/RATING.md 3.6 requires."""
    return value.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)


def decimal_text(value: Decimal) -> str:
    """The exact decimal as plain text, never in exponent form (a zero sum of nano-units is ``0E-9``).

    >>> decimal_text(Decimal("0E-9")), decimal_text(Decimal("12.50"))
    ('0.000000000', '12.50')
    """
    return format(value, "f")


def money_text(value: Decimal) -> str:
    """Ledger money as exact text with the ledger's places, whatever the sum's own exponent.

    >>> money_text(Decimal("0E-9")), money_text(Decimal(0)), money_text(Decimal("-12.5"))
    ('0.000000000', '0.000000000', '-12.500000000')
    """
    return format(value, f".{MONEY_DECIMALS}f")


def format_money(value: Decimal, decimals: int) -> str:
    """Render money with a fixed number of places, never in exponent form."""
    return f"{round_half_up(value, decimals):.{decimals}f}"
