"""The review step of a rate import: every candidate rate against the tariff's history.

Each candidate is classified (new, increase, decrease, unchanged, duplicate,
past, error; and, in replace mode, the tariff's prefixes the deck lacks as
discontinued) and given an action: insert a new version, replace a
not-yet-effective version, or skip.  The counts of the seed's summary come
from these decisions.  Pure: the service supplies the history and writes.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from functools import lru_cache
from typing import Any

from rerate.domain.deck_mapping import MONEY, Candidate
from rerate.domain.money import MoneyError, percent_to_scaled, to_nanos

#: The pricing columns of a rate row, in shared/RATING.md's order (the canonical CSV uses it too).
RATE_ROW = (
    "first_interval",
    "next_interval",
    "first_price",
    "next_price",
    "connect_fee",
    "free_seconds",
    "grace_period",
    "post_call_surcharge",
    "forbidden",
    "discontinued",
)
#: Rate attributes compared to decide whether a row equals the rate in force (everything but dates).
COMPARED = (
    *RATE_ROW,
    "off_peak_first_price",
    "off_peak_next_price",
    "preference",
    "route_category",
    "hidden",
    "payback",
)
#: Values for attributes neither in the deck, nor defaulted, nor kept from an existing rate.
BUILT_IN_DEFAULTS: dict[str, Any] = {
    "first_interval": 1,
    "next_interval": 1,
    "connect_fee": Decimal(0),
    "free_seconds": 0,
    "grace_period": 0,
    "post_call_surcharge": 0,
    "forbidden": False,
    "discontinued": False,
    "hidden": False,
}
#: Attributes taken from the rate in force when the deck does not give them.  Never prices: a
#: missing price is an error, not a reason to keep the old one.
PRICES = ("first_price", "next_price", "off_peak_first_price", "off_peak_next_price")
KEPT_FROM_EXISTING = (*(c for c in COMPARED if c not in PRICES), "description", "country")


class Mode(StrEnum):
    ADD = "add"
    REPLACE = "replace"


class PastPolicy(StrEnum):
    SKIP = "skip"  # the seed's default: rows effective in the past are not loaded
    NOW = "now"  # loaded as effective immediately (--past-as-now)
    BACKDATE = "backdate"  # loaded as given; the affected XDRs get a proposed re-rating (--allow-past)


class Status(StrEnum):
    NEW = "new"
    INCREASE = "increase"
    DECREASE = "decrease"
    UNCHANGED = "unchanged"  # same prices, other attributes differ
    DUPLICATE = "duplicate"  # identical to the rate in force
    PAST = "past"
    ERROR = "error"
    DISCONTINUED = "discontinued"


class Action(StrEnum):
    INSERT = "insert"
    REPLACE_FUTURE = "replace_future"  # a version not yet in force is rewritten (no XDR used it)
    SKIP = "skip"


class StoredRate:
    """One version of a prefix's history in the tariff.

    ``values`` may be given as a function of nothing, called on first use: a
    deck touches few versions of a large tariff's history, so the rest are
    never converted.
    """

    __slots__ = ("_key", "_values", "effective_from", "id")

    def __init__(
        self, id: int, effective_from: datetime, values: Mapping[str, Any] | Callable[[], Mapping[str, Any]]
    ) -> None:
        self.id = id
        self.effective_from = effective_from
        self._values = values
        self._key: tuple[Any, ...] | None = None

    @property
    def values(self) -> Mapping[str, Any]:
        values = self._values
        if callable(values):
            values = self._values = values()
        return values

    @property
    def key(self) -> tuple[Any, ...]:
        """The compared attributes, in :data:`COMPARED` order."""
        if self._key is None:
            self._key = tuple(map(self.values.get, COMPARED))
        return self._key


_ZERO_FEE = BUILT_IN_DEFAULTS["connect_fee"]
#: What the catalog's text columns hold.
_TEXT_LIMITS = {"description": 200, "route_category": 100}
#: The largest price the catalog stores (int64 nano-units).
_MONEY_LIMIT = Decimal(2**63 - 1).scaleb(-9)


@dataclass(slots=True)
class ReviewedRate:
    line: int | None
    sheet: str | None
    prefix: str
    status: Status
    action: Action
    values: dict[str, Any] = field(default_factory=dict)
    #: The version in force that this one follows (its values are the "old" ones of the review).
    old: StoredRate | None = None
    #: The version this one replaces in place (a future one), if any.
    replaces_id: int | None = None
    error: str | None = None
    error_column: str | None = None
    #: The prefix had no rate in force in this tariff before.
    new_for_tariff: bool = False
    #: Stored versions not yet in force that this one withdraws (replace mode).
    withdraws: tuple[int, ...] = ()
    #: ``old`` is an earlier row of the same deck for this prefix, not a stored version.
    follows_deck: bool = False


@dataclass
class ReviewOptions:
    now: datetime
    mode: Mode = Mode.ADD
    past: PastPolicy = PastPolicy.SKIP
    skip_duplicates: bool = True
    defaults_only_new: Sequence[str] = ()
    #: The defaults the operator gave (field -> value already parsed), for ``defaults_only_new``.
    defaulted: Mapping[str, Any] = field(default_factory=dict)


def in_force(history: Sequence[StoredRate], moment: datetime) -> StoredRate | None:
    """The version in force at ``moment`` (greatest ``effective_from <= moment``), discontinued or not."""
    if len(history) == 1:  # most prefixes have one version
        return history[0] if history[0].effective_from <= moment else None
    index = bisect.bisect_right([h.effective_from for h in history], moment)
    return history[index - 1] if index else None


def _live(rate: StoredRate | None) -> StoredRate | None:
    return rate if rate is not None and not rate.values["discontinued"] else None


@lru_cache(maxsize=1 << 16)  # a deck repeats its prices
def _amount_problem(value: Decimal) -> str | None:
    """Why ``value`` cannot be stored as an amount (more than 9 decimals, too large), or None."""
    exponent = value.as_tuple().exponent
    if not (isinstance(exponent, int) and exponent >= -9):  # the common case needs no scaling
        try:
            to_nanos(value)
        except MoneyError:
            return f"{value:f} has more than 9 decimal places (a rule can round it: round(value, 9))"
    if abs(value) >= _MONEY_LIMIT:
        return f"{value:f} is beyond what an amount can hold ({_MONEY_LIMIT})"
    return None


#: Whole-number attributes, and the largest a rate row keeps (a 32-bit integer column).
_WHOLE_NUMBERS = ("first_interval", "next_interval", "free_seconds", "grace_period", "preference")
_LARGEST_WHOLE = 2**31 - 1


def _check(values: dict[str, Any]) -> tuple[str, str] | None:
    """(column, message) of the first invalid attribute, after defaults."""
    if values.get("first_price") is None:
        return "first_price", "no price given"
    first = values["first_price"]
    for name in MONEY:
        value = values.get(name)
        # Skip what is already known good: nothing, the first price again (a "price" column sets
        # both), the built-in zero fee.
        if value is None or (value is first and name != "first_price") or value is _ZERO_FEE:
            continue
        if value < 0 and name != "payback":  # a payback credits the customer: it may be negative
            return name, f"must not be negative, got {value}"
        problem = _amount_problem(value)
        if problem is not None:
            return name, f"{name} {problem}"
    for name in _WHOLE_NUMBERS:  # a number the catalog cannot hold is a bad cell, not a crash at load
        number = values.get(name)
        if isinstance(number, int) and not isinstance(number, bool) and abs(number) > _LARGEST_WHOLE:
            return name, f"{number} is too large (at most {_LARGEST_WHOLE:,})"
    if values.get("next_interval", 1) < 1:
        return "next_interval", "must be at least 1 second"
    if values.get("first_interval", 0) < 0:
        return "first_interval", "must not be negative"
    surcharge = values.get("post_call_surcharge", 0)
    if isinstance(surcharge, Decimal):
        if surcharge < -100:
            return "post_call_surcharge", "cannot be below -100 %"
        try:
            values["post_call_surcharge"] = percent_to_scaled(surcharge, field="post_call_surcharge")
        except MoneyError as exc:
            return "post_call_surcharge", str(exc)
    for name, longest in _TEXT_LIMITS.items():
        text = values.get(name)
        if text is not None and len(str(text)) > longest:
            return name, f"is longer than {longest} characters"
    country = values.get("country")
    if country is not None and (len(str(country)) != 2 or not str(country).isalpha()):
        return "country", f"must be an ISO 3166 two-letter code, got {country!r}"
    return None


def review(
    candidates: Sequence[Candidate],
    history: Mapping[str, Sequence[StoredRate]],
    options: ReviewOptions,
) -> list[ReviewedRate]:
    """Classify every candidate; in replace mode, add the tariff's prefixes the deck lacks.

    A prefix's rows are reviewed in date order, each against what will be in force just
    before it once the import is done: the tariff's history, less what replace mode
    withdraws, and the deck's own earlier rows for that prefix.  So a deck that raises a
    price on the 1st and lowers it back on the 15th keeps both rows.  The result keeps
    the deck's order.
    """
    context = _DeckContext.of(candidates, options)
    reviewed: list[ReviewedRate | None] = [None] * len(candidates)
    for index in context.order:
        reviewed[index] = _review_one(candidates[index], index, history, options, context)
    result = [r for r in reviewed if r is not None]
    if options.mode is Mode.REPLACE:
        stopped = _discontinued(result, history, options)
        if any(r.status is Status.ERROR for r in result):
            # The seed: discontinue nothing when a row failed (a typo must not end a live rate).
            for rate in stopped:
                rate.action, rate.withdraws = Action.SKIP, ()
                rate.error = "kept: replace mode discontinues only when the deck has no errors"
        result.extend(stopped)
    return result


@dataclass
class _DeckContext:
    """What reviewing one row needs to know about the deck's other rows."""

    #: The order rows are reviewed in: a prefix's rows by date (most prefixes have one row).
    order: list[int]
    #: Prefixes with more than one good row.
    repeated: set[str]
    #: Per prefix: the dates its good rows take effect (after the past policy; replace mode only).
    dates: dict[str, set[datetime]]
    #: Past rows that ``--past-as-now`` skips: candidate index -> the line of the later past row.
    superseded: dict[int, int | None]
    #: Per repeated prefix: the newest of its rows reviewed so far that will be stored.
    stored_by_deck: dict[str, StoredRate] = field(default_factory=dict)
    #: Per prefix: the row that carries replace mode's withdrawals (counted once).
    withdrawing: set[str] = field(default_factory=set)
    seen: dict[tuple[str, datetime], int | None] = field(default_factory=dict)

    @classmethod
    def of(cls, candidates: Sequence[Candidate], options: ReviewOptions) -> _DeckContext:
        now = options.now
        once: set[str] = set()
        repeated: set[str] = set()
        for candidate in candidates:
            if not candidate.error:
                (repeated if candidate.prefix in once else once).add(candidate.prefix)

        def given(index: int) -> datetime:
            return candidates[index].values.get("effective_from") or now

        dates: dict[str, set[datetime]] = {}
        latest_past: dict[str, tuple[datetime, int]] = {}
        for index, candidate in enumerate(candidates):
            if candidate.error or (options.mode is not Mode.REPLACE and candidate.prefix not in repeated):
                continue
            date = given(index)
            past = date < now
            if past and options.past is PastPolicy.SKIP:
                continue
            as_now = past and options.past is PastPolicy.NOW
            dates.setdefault(candidate.prefix, set()).add(now if as_now else date)
            if options.past is PastPolicy.NOW and date <= now:  # a row dated now is newer than the past
                known = latest_past.get(candidate.prefix)
                if known is None or date > known[0]:
                    latest_past[candidate.prefix] = (date, index)
        superseded: dict[int, int | None] = {}
        order = []
        several = []
        for index, candidate in enumerate(candidates):
            if candidate.error or candidate.prefix not in repeated:
                order.append(index)
                continue
            several.append(index)
            latest = latest_past.get(candidate.prefix)
            if latest is not None and given(index) < min(latest[0], now):
                superseded[index] = candidates[latest[1]].line
        order.extend(sorted(several, key=given))  # stable: one date twice keeps the file's order
        return cls(order, repeated, dates, superseded)


def _review_one(
    candidate: Candidate,
    index: int,
    history: Mapping[str, Sequence[StoredRate]],
    options: ReviewOptions,
    deck: _DeckContext,
) -> ReviewedRate:
    def failed(message: str, column: str | None) -> ReviewedRate:
        return ReviewedRate(
            candidate.line,
            candidate.sheet,
            candidate.prefix,
            Status.ERROR,
            Action.SKIP,
            dict(candidate.values),
            error=message,
            error_column=column,
        )

    if candidate.error:
        return failed(candidate.error, candidate.error_column)
    if index in deck.superseded:
        later = deck.superseded[index]
        return ReviewedRate(
            candidate.line,
            candidate.sheet,
            candidate.prefix,
            Status.PAST,
            Action.SKIP,
            dict(candidate.values),
            error=f"superseded by the later past date on line {later}" if later else None,
        )
    values = dict(candidate.values)
    effective = values.pop("effective_from", None) or options.now
    versions = history.get(candidate.prefix, ())
    if options.mode is Mode.REPLACE:
        versions = _kept_versions(versions, candidate.prefix, options, deck)
    past = effective < options.now
    if past and options.past is PastPolicy.NOW:
        effective = options.now
    before = in_force(versions, effective)
    from_deck = deck.stored_by_deck.get(candidate.prefix)
    if from_deck is not None and (before is None or from_deck.effective_from >= before.effective_from):
        before = from_deck
    follows_deck = before is not None and before is from_deck
    current = _live(before)
    if current is not None:
        stored = current.values
        for name in KEPT_FROM_EXISTING:
            if name in candidate.given:
                continue
            if (name not in values or name in options.defaults_only_new) and stored.get(name) is not None:
                values[name] = stored[name]
    for name, value in BUILT_IN_DEFAULTS.items():
        values.setdefault(name, value)
    values.setdefault("next_price", values.get("first_price"))
    problem = _check(values)
    if problem is not None:
        return failed(problem[1], problem[0])
    key = (candidate.prefix, effective)
    if key in deck.seen:
        where = f"line {deck.seen[key]}" if deck.seen[key] is not None else "another row"
        return failed(
            f"prefix {candidate.prefix} effective {effective:%Y-%m-%d %H:%M} also on {where}", "prefix"
        )
    deck.seen[key] = candidate.line
    values["effective_from"] = effective
    rate = ReviewedRate(
        candidate.line,
        candidate.sheet,
        candidate.prefix,
        Status.NEW,
        Action.INSERT,
        values,
        old=current,
        new_for_tariff=current is None and not follows_deck,
        follows_deck=follows_deck,
    )
    if past and options.past is PastPolicy.SKIP:
        rate.status, rate.action = Status.PAST, Action.SKIP
        return rate
    # A stored version at this very time: one not yet in force is rewritten in place below; one in
    # force (an import of this same second, say) is never rewritten: the row is refused.
    same_time = next((v for v in versions if v.effective_from == effective), None)
    if options.mode is Mode.REPLACE and candidate.prefix not in deck.withdrawing:
        # The seed: for a prefix in the deck, the tariff's versions not yet in force give way to the
        # deck's rates (one at the very same time as a deck row is rewritten in place or kept).
        deck.withdrawing.add(candidate.prefix)
        rate.withdraws = _withdrawn(history.get(candidate.prefix, ()), candidate.prefix, options, deck)
    if values.get("discontinued"):
        rate.status = Status.DISCONTINUED
        if current is None:  # nothing is in force then: a stop would only add a row
            rate.action = Action.SKIP
            rate.error = f"prefix {candidate.prefix} has no rate in force then: nothing to discontinue"
            return rate
    elif current is None:
        rate.status = Status.NEW
    else:
        # Compared in full only when the prices are the same: most rows of a deck change a price.
        rate.status = _price_change(values, current.values) or (
            Status.DUPLICATE if tuple(map(values.get, COMPARED)) == current.key else Status.UNCHANGED
        )
    if rate.status is Status.DUPLICATE and options.skip_duplicates:
        rate.action = Action.SKIP  # nothing new to store (withdrawals still happen)
        return rate
    if same_time is not None:
        if same_time.effective_from <= options.now:
            refused = failed(
                f"prefix {candidate.prefix} already has a rate effective {effective:%Y-%m-%d %H:%M}; "
                "history in force is not rewritten: give another effective date",
                "effective_from",
            )
            refused.withdraws = rate.withdraws  # the prefix's other rows count on them
            return refused
        rate.action, rate.replaces_id = Action.REPLACE_FUTURE, same_time.id
    if candidate.prefix in deck.repeated:
        deck.stored_by_deck[candidate.prefix] = StoredRate(0, effective, values)
    return rate


def _kept_versions(
    versions: Sequence[StoredRate], prefix: str, options: ReviewOptions, deck: _DeckContext
) -> Sequence[StoredRate]:
    """The prefix's stored versions that stay after a replace-mode import (it withdraws some)."""
    if not versions or versions[-1].effective_from <= options.now:
        return versions
    return [v for v in versions if not _is_withdrawn(v, prefix, options, deck)]


def _withdrawn(
    versions: Sequence[StoredRate], prefix: str, options: ReviewOptions, deck: _DeckContext
) -> tuple[int, ...]:
    """The ids of the prefix's versions that a replace-mode import withdraws."""
    return tuple(v.id for v in versions if _is_withdrawn(v, prefix, options, deck))


def _is_withdrawn(version: StoredRate, prefix: str, options: ReviewOptions, deck: _DeckContext) -> bool:
    """Replace mode: a version not yet in force, at a time none of the deck's rows for it gives."""
    return version.effective_from > options.now and version.effective_from not in deck.dates.get(prefix, ())


def _price_change(new: Mapping[str, Any], old: Mapping[str, Any]) -> Status | None:
    """Increase or decrease by the first price that differs; None when both prices are the same."""
    for name in ("first_price", "next_price"):
        if new[name] != old[name]:
            return Status.INCREASE if new[name] > old[name] else Status.DECREASE
    return None


def _discontinued(
    reviewed: Sequence[ReviewedRate], history: Mapping[str, Sequence[StoredRate]], options: ReviewOptions
) -> list[ReviewedRate]:
    """Replace mode: every prefix with a live rate that the deck lacks stops when the deck takes effect."""
    in_deck = {r.prefix for r in reviewed}
    dates = [r.values["effective_from"] for r in reviewed if r.action is not Action.SKIP]
    moment = max(min(dates), options.now) if dates else options.now
    result = []
    for prefix, versions in sorted(history.items()):
        if prefix in in_deck:
            continue
        if _live(in_force(versions, options.now)) is None:
            # Nothing in force now: only scheduled (or stopped, then scheduled again).  The deck says
            # it is gone: every version to come is withdrawn, even one before the deck's date.
            scheduled = tuple(v.id for v in versions if v.effective_from > options.now)
            if scheduled:
                values = dict(versions[-1].values) | {"effective_from": versions[-1].effective_from}
                result.append(
                    ReviewedRate(
                        None, None, prefix, Status.DISCONTINUED, Action.SKIP, values, withdraws=scheduled
                    )
                )
            continue
        current = _live(in_force(versions, moment))
        if current is None:
            continue
        values = dict(current.values) | {"discontinued": True, "effective_from": moment}
        stopped = ReviewedRate(
            None,
            None,
            prefix,
            Status.DISCONTINUED,
            Action.INSERT,
            values,
            old=current,
        )
        same_time = next((v for v in versions if v.effective_from == moment), None)
        if same_time is not None:  # a version not yet in force at that very time: it becomes the stop
            stopped.action, stopped.replaces_id = Action.REPLACE_FUTURE, same_time.id
        # A later version would bring the prefix back: the deck says it is gone.
        stopped.withdraws = tuple(v.id for v in versions if v.effective_from > moment)
        result.append(stopped)
    return result


@dataclass
class Summary:
    """The seed's summary of an import, plus the review's other counts."""

    total_processed: int = 0
    created: int = 0
    overridden: int = 0
    skipped_errors: int = 0
    skipped_duplicates: int = 0
    new_rates_for_tariff: int = 0
    new_destinations: int = 0
    skipped_past: int = 0
    discontinued: int = 0
    #: Versions not yet in force that replace mode withdrew.
    withdrawn: int = 0
    increases: int = 0
    decreases: int = 0
    unchanged: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def summarize(reviewed: Sequence[ReviewedRate]) -> Summary:
    summary = Summary()
    for rate in reviewed:
        summary.withdrawn += len(rate.withdraws)
        if rate.line is not None:
            summary.total_processed += 1
        if rate.status is Status.ERROR:
            summary.skipped_errors += 1
        elif rate.status is Status.PAST:
            summary.skipped_past += 1
        elif rate.status is Status.DUPLICATE and rate.action is Action.SKIP:
            summary.skipped_duplicates += 1
        elif rate.action is Action.SKIP:
            continue
        else:
            summary.created += 1
            if (rate.old is not None and not rate.follows_deck) or rate.replaces_id is not None:
                summary.overridden += 1
            if rate.new_for_tariff and rate.status is not Status.DISCONTINUED:
                summary.new_rates_for_tariff += 1
        counted = {
            Status.DISCONTINUED: "discontinued",
            Status.INCREASE: "increases",
            Status.DECREASE: "decreases",
            Status.UNCHANGED: "unchanged",
        }
        if rate.status in counted and rate.action is not Action.SKIP:
            name = counted[rate.status]
            setattr(summary, name, getattr(summary, name) + 1)
    return summary
