"""Mediation rules: an ordered list that rewrites numbers and resolves identifiers before rating.

Each rule has a kind, a scope (every XDR, the XDRs of one account identifier,
or of one vendor connection identifier, as they appear in the XDR) and
effective dates (it applies to XDRs whose connect time is in
``[valid_from, valid_to)``), like everything else that decides a price.

* ``number``: a called number starting with ``match`` (after the default
  normalization: spaces and dashes removed, then one leading ``+`` or ``00``)
  has that prefix replaced by ``replace``: a technical prefix stripped (``match=1234#``, ``replace=``),
  a national number made international (``match=0``, ``replace=44``), the
  NANP international prefix (``match=011``, ``replace=``), a trunk prefix.
  Optionally only numbers of at least ``min_length`` characters.
* ``account``: an account identifier equal to ``match`` is read as
  ``replace`` (aliases; an IP address a template put in the account field).
  A ``match`` written as a network (``10.0.0.0/24``) takes every IP address
  in it.
* ``vendor``: the same for vendor connection identifiers.
* ``service``: XDRs whose normalized number starts with ``match`` (every XDR
  in scope when ``match`` is empty) are of service ``replace`` (toll-free,
  premium, mobile, ...); by default an XDR's service is the one it came with.
* ``rating_key``: XDRs in scope (and, with a ``match``, with numbers
  starting with it) get the rating key ``replace``, where ``{service}``
  stands for the XDR's service: ``{service}:inbound`` for a vendor's
  incoming traffic, say.  By default the rating key is the service.  The key
  is stored with each XDR.

For each XDR and kind, the first rule in position order that is in force,
in scope and matches is applied, and only that one (as a switch's dialplan
translation table does): a rule for ``011`` placed before one for ``0``
sees NANP international numbers first.

Pure: the service reads the rules from the catalog and applies them to Arrow
batches at ingest and re-processing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

#: Kinds applied before normalization (to the raw text), then after it (to the normalized number).
REWRITING = ("number", "account", "vendor")
CLASSIFYING = ("service", "rating_key")
KINDS = (*REWRITING, *CLASSIFYING)
SCOPES = ("global", "account", "vendor")


class RuleError(ValueError):
    """A rule that cannot be used, in words."""


@dataclass(frozen=True)
class MediationRule:
    id: int
    position: int
    kind: str
    match: str
    replace: str
    scope: str = "global"
    scope_value: str | None = None
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    min_length: int | None = None

    def check(self) -> None:
        """Raise :class:`RuleError` naming what is wrong."""
        if self.kind not in KINDS:
            raise RuleError(f"unknown rule kind {self.kind!r}: use {', '.join(KINDS)}")
        if self.scope not in SCOPES:
            raise RuleError(f"unknown scope {self.scope!r}: use {', '.join(SCOPES)}")
        if (self.scope == "global") != (self.scope_value is None):
            raise RuleError("an account or vendor scope names its identifier; a global rule names none")
        if not self.match and self.kind in REWRITING:
            raise RuleError("a rule needs something to match")
        if self.kind in ("account", "vendor") and not self.replace:
            raise RuleError(f"an {self.kind} rule needs the identifier to read instead")
        if self.kind in CLASSIFYING and not self.replace.strip():
            what = "service" if self.kind == "service" else "rating key"
            raise RuleError(f"a {self.kind} rule needs the {what} to give (--replace)")
        if self.min_length is not None and (self.kind != "number" or self.min_length < 1):
            raise RuleError("min_length is a positive length, for number rules only")
        if self.valid_from and self.valid_to and self.valid_to <= self.valid_from:
            raise RuleError("valid_to must be after valid_from")

    def describe(self) -> str:
        """The rule in words, for listings and the audit."""
        if self.kind == "number":
            what = f"numbers starting {self.match!r}" + (
                f" (at least {self.min_length} digits)" if self.min_length else ""
            )
            action = (
                f"{what}: prefix replaced by {self.replace!r}" if self.replace else f"{what}: prefix removed"
            )
        elif self.kind in CLASSIFYING:
            numbers = f"numbers starting {self.match!r}" if self.match else "every number"
            action = f"{numbers}: {self.kind.replace('_', ' ')} {self.replace!r}"
        else:
            action = f"{self.kind} identifier {self.match!r} read as {self.replace!r}"
        scope = "all XDRs" if self.scope == "global" else f"XDRs of {self.scope} {self.scope_value!r}"
        since = f" from {self.valid_from:%Y-%m-%d %H:%M}" if self.valid_from else ""
        until = f" until {self.valid_to:%Y-%m-%d %H:%M}" if self.valid_to else ""
        return f"{action}; {scope}{since}{until}"


@lru_cache(maxsize=1024)
def _network(match: str) -> IPv4Network | IPv6Network | None:
    """The IP network ``match`` writes (``10.0.0.0/24``), or None for a plain identifier (which
    may hold a ``/`` too: ``SIP/carrier-a``)."""
    if "/" not in match:
        return None
    try:
        return ip_network(match.strip(), strict=False)
    except ValueError:
        return None


def _in_network(identifiers: pa.Array, block: IPv4Network | IPv6Network, rows: np.ndarray) -> pa.Array:
    """Whether each identifier is an IP address in ``block``, checked once per distinct identifier
    among ``rows`` (the others are never in it)."""
    inside = []
    for value in pc.unique(identifiers.filter(pa.array(rows))).to_pylist():
        try:
            if value is not None and ip_address(value.strip()) in block:
                inside.append(value)
        except ValueError:  # not an IP address: a name, which no network holds
            continue
    return pc.is_in(identifiers, value_set=pa.array(inside, pa.string()))


def _micros(moment: datetime) -> int:
    return int(moment.timestamp()) * 1_000_000 + moment.microsecond


@dataclass(frozen=True)
class RuleSet:
    """The rules in position order, ready to apply to batches."""

    rules: tuple[MediationRule, ...] = ()

    @classmethod
    def build(cls, rules: Sequence[MediationRule]) -> RuleSet:
        for rule in rules:
            rule.check()
        return cls(tuple(sorted(rules, key=lambda r: (r.position, r.id))))

    def of_kind(self, kind: str) -> list[MediationRule]:
        return [r for r in self.rules if r.kind == kind]

    def apply(self, batch: pa.RecordBatch | pa.Table, number: pa.Array) -> dict[str, pa.Array]:
        """The number (``cld`` after the default normalization's rewriting, given as ``number``),
        ``account`` and ``vendor`` after the rules; the same arrays when none apply."""
        columns = {name: _array(batch.column(name)) for name in ("account", "vendor")}
        columns["cld"] = number
        if not self.rules:
            return columns
        when = _array(batch.column("connect_time"))
        micros = pc.cast(when, pa.int64()).to_numpy(zero_copy_only=False)
        account, vendor = columns["account"], columns["vendor"]
        changed_number = False
        for kind in REWRITING:
            rules = self.of_kind(kind)
            if not rules:
                continue
            target = number if kind == "number" else columns[kind]
            done = np.zeros(len(target), dtype=bool)
            for rule in rules:
                applies = _in_force(rule, micros) & ~done & _in_scope(rule, account, vendor)
                if kind == "number":
                    hit = pc.fill_null(pc.starts_with(target, rule.match), False).to_numpy(
                        zero_copy_only=False
                    )
                    if rule.min_length:
                        long_enough = pc.greater_equal(pc.utf8_length(target), rule.min_length)
                        hit &= pc.fill_null(long_enough, False).to_numpy(zero_copy_only=False)
                    applies &= hit
                    if applies.any():
                        rest = pc.utf8_slice_codeunits(target, len(rule.match))
                        rewritten = pc.binary_join_element_wise(rule.replace, rest, "")
                        target = pc.if_else(pa.array(applies), rewritten, target)
                        changed_number = True
                else:
                    block = _network(rule.match)
                    if block is None:
                        equal = pc.equal(target, rule.match)
                    else:  # only the rows the rule may reach: in force and in scope
                        equal = _in_network(target, block, applies)
                    applies &= pc.fill_null(equal, False).to_numpy(zero_copy_only=False)
                    if applies.any():
                        target = pc.if_else(pa.array(applies), pa.scalar(rule.replace), target)
                done |= applies
            if kind == "number":
                number = target
            else:
                columns[kind] = target
        if changed_number:
            columns["cld"] = number
        return columns

    def rating_keys(self, batch: pa.RecordBatch | pa.Table, number: pa.Array) -> pa.Array:
        """Each XDR's rating key: its service (classified by the rules, else as received), or a key rule's."""
        service = pc.coalesce(_array(batch.column("service")), pa.scalar("voice"))
        if not any(r.kind in CLASSIFYING for r in self.rules):
            return service
        micros = pc.cast(_array(batch.column("connect_time")), pa.int64()).to_numpy(zero_copy_only=False)
        account, vendor = _array(batch.column("account")), _array(batch.column("vendor"))
        for kind in CLASSIFYING:
            done = np.zeros(len(number), dtype=bool)
            result = service
            for rule in self.of_kind(kind):
                applies = _in_force(rule, micros) & ~done & _in_scope(rule, account, vendor)
                if rule.match:
                    applies &= pc.fill_null(pc.starts_with(number, rule.match), False).to_numpy(
                        zero_copy_only=False
                    )
                if not applies.any():
                    continue
                if kind == "service":
                    given = pa.scalar(rule.replace)
                else:  # "{service}" in a key template stands for the XDR's service
                    parts = rule.replace.split("{service}")
                    given = (
                        parts[0]
                        if len(parts) == 1
                        else pc.binary_join_element_wise(
                            *(piece for part in parts[:-1] for piece in (part, service)), parts[-1], ""
                        )
                    )
                result = pc.if_else(pa.array(applies), given, result)
                done |= applies
            service = result
        return service


def _array(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column


def _in_force(rule: MediationRule, micros: np.ndarray) -> np.ndarray:
    applies = np.ones(len(micros), dtype=bool)
    if rule.valid_from is not None:
        applies &= micros >= _micros(rule.valid_from)
    if rule.valid_to is not None:
        applies &= micros < _micros(rule.valid_to)
    return applies


def _in_scope(rule: MediationRule, account: pa.Array, vendor: pa.Array) -> np.ndarray:
    if rule.scope == "global":
        return np.ones(len(account), dtype=bool)
    identifiers = account if rule.scope == "account" else vendor
    return np.asarray(
        pc.fill_null(pc.equal(identifiers, rule.scope_value), False).to_numpy(zero_copy_only=False)
    )
