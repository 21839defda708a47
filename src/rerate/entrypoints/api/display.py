"""How the web UI shows times and money: as the billing team reads them, not as they are stored."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

#: Money is shown with at least this many decimals (12.50), and all those it has (0.12345).
_MIN_DECIMALS = 2


def shown_time(value: object) -> str:
    """A time in UTC to the second (``2026-11-30 14:05:09 UTC``); a time stored without a zone
    is UTC.  Anything that is no time is shown as it is."""
    if value is None or value == "":
        return ""
    moment = value
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return value
    if not isinstance(moment, datetime):
        return str(value)
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC"


def shown_money(value: object) -> str:
    """An exact amount without the trailing zeros of its storage (``12.345670000`` is
    ``12.34567``, ``3.000000000`` is ``3.00``): no digit is rounded away."""
    if value is None or value == "":
        return ""
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return str(value)
    if not amount.is_finite():
        return str(value)
    if amount.is_zero():
        amount = abs(amount)  # no "-0.00"
    exponent = min(int(amount.normalize().as_tuple().exponent), -_MIN_DECIMALS)
    return f"{amount.quantize(Decimal(1).scaleb(exponent)):f}"


#: A command-line option named in a service's message (``--ghost-percent``).
_OPTION = re.compile(r"(?<![\w-])--([a-z][a-z0-9]*(?:-[a-z0-9]+)*)\b")


#: A value a message quotes (a file name, what was typed): shown as it is.
_QUOTED = re.compile(r"('[^']*')")


def shown_error(error: object) -> str:
    """A service's error as the API and the web UI say it: the services name the command line's
    options (``--ghost-percent``), which are the request's fields here (``ghost_percent``).
    Quoted values are left alone: ``--period '--x'`` names the field, not the value."""
    parts = _QUOTED.split(str(error))  # the quoted values are the odd parts
    return "".join(
        part if position % 2 else _OPTION.sub(lambda o: "'" + o.group(1).replace("-", "_") + "'", part)
        for position, part in enumerate(parts)
    )
