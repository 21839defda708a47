"""Mediation rules: the vectorized rule engine against a row-by-row reading of the same rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rerate.domain.history import History
from rerate.domain.mediation import Lookup, MediationContext, PrefixNames, mediate_keyed, strip_numbers
from rerate.domain.mediation_rules import REWRITING, MediationRule, RuleError, RuleSet
from rerate.domain.prefix_index import encode_numbers

START = datetime(2026, 10, 1, tzinfo=UTC)


def _batch(rows: list[tuple[str, str, str, datetime]]) -> pa.Table:
    cld, account, vendor, when = zip(*rows, strict=True) if rows else ((), (), (), ())
    return pa.table(
        {
            "cld": pa.array(cld, pa.string()),
            "account": pa.array(account, pa.string()),
            "vendor": pa.array(vendor, pa.string()),
            "connect_time": pa.array(when, pa.timestamp("us", tz="UTC")),
        }
    )


def _apply(rules: RuleSet, batch: pa.Table) -> dict[str, pa.Array]:
    """The rules as mediation applies them: to the numbers after the default normalization."""
    return rules.apply(batch, strip_numbers(batch.column("cld"))[0])


def _reference(rules: list[MediationRule], row: tuple[str, str, str, datetime]) -> tuple[str, str, str]:
    """One XDR, one rule at a time, as RATING.md section 2 and the docs describe it: the default
    normalization first (spaces and dashes removed, then one leading + or 00), then the rules."""
    cld, account, vendor, when = row
    number = cld.replace(" ", "").replace("-", "")
    number = number[1:] if number.startswith("+") else number[2:] if number.startswith("00") else number
    results = {"number": number, "account": account, "vendor": vendor}
    for kind in REWRITING:
        for rule in sorted(rules, key=lambda r: (r.position, r.id)):
            if rule.kind != kind:
                continue
            if (rule.valid_from and when < rule.valid_from) or (rule.valid_to and when >= rule.valid_to):
                continue
            if rule.scope == "account" and account != rule.scope_value:
                continue
            if rule.scope == "vendor" and vendor != rule.scope_value:
                continue
            value = results[kind]
            if kind == "number":
                if value.startswith(rule.match) and len(value) >= (rule.min_length or 0):
                    results[kind] = rule.replace + value[len(rule.match) :]
                    break
            elif value == rule.match:
                results[kind] = rule.replace
                break
    return results["number"], results["account"], results["vendor"]


def test_first_matching_rule_wins_so_international_numbers_stay_international() -> None:
    rules = RuleSet.build(
        [
            MediationRule(1, 10, "number", "00", ""),
            MediationRule(2, 20, "number", "0", "44"),
            MediationRule(3, 30, "number", "011", "", scope="account", scope_value="us-pbx"),
        ]
    )
    out = _apply(
        rules,
        _batch(
            [
                ("020 7946-0000", "uk-pbx", "gw1", START),
                ("0049301234", "uk-pbx", "gw1", START),
                ("01144207946", "us-pbx", "gw1", START),  # "0" (position 20) comes before "011" (30)
                ("447946", "uk-pbx", "gw1", START),
            ]
        ),
    )
    assert out["cld"].to_pylist() == ["442079460000", "49301234", "441144207946", "447946"]


def test_rules_see_numbers_after_the_default_normalization() -> None:
    """RATING.md section 2: the default (spaces, dashes, one leading + or 00) always applies first."""
    rules = RuleSet.build([MediationRule(1, 10, "number", "0", "44")])
    out = _apply(rules, _batch([("0044 20 7946 0000", "a", "g", START), ("+0207946000", "a", "g", START)]))
    assert out["cld"].to_pylist() == ["442079460000", "44207946000"]


def test_an_account_rule_on_a_network_takes_every_address_in_it() -> None:
    rules = RuleSet.build([MediationRule(1, 10, "account", "10.0.0.0/24", "acme")])
    out = _apply(
        rules,
        _batch(
            [
                ("44", "10.0.0.5", "g", START),
                ("44", "10.0.1.5", "g", START),
                ("44", "trunk-a", "g", START),
                ("44", " 10.0.0.7", "g", START),
            ]
        ),
    )
    assert out["account"].to_pylist() == ["acme", "10.0.1.5", "trunk-a", "acme"]


def test_scope_dates_and_min_length() -> None:
    rules = RuleSet.build(
        [
            MediationRule(1, 10, "number", "9", "", scope="vendor", scope_value="gw2", min_length=8),
            MediationRule(2, 20, "account", "10.0.0.5", "acme", valid_from=START + timedelta(days=1)),
            MediationRule(3, 30, "vendor", "gw2", "carrier-b", valid_to=START + timedelta(days=1)),
        ]
    )
    out = _apply(
        rules,
        _batch(
            [
                ("94420794600", "10.0.0.5", "gw2", START),  # number stripped; alias not yet; vendor renamed
                (
                    "9123",
                    "10.0.0.5",
                    "gw2",
                    START + timedelta(days=2),
                ),  # too short; alias now; vendor rule over
                ("94420794600", "10.0.0.5", "gw1", START + timedelta(days=2)),  # other vendor: number kept
            ]
        ),
    )
    assert out["cld"].to_pylist() == ["4420794600", "9123", "94420794600"]
    assert out["account"].to_pylist() == ["10.0.0.5", "acme", "acme"]
    assert out["vendor"].to_pylist() == ["carrier-b", "gw2", "gw1"]


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (MediationRule(1, 1, "colour", "0", "44"), "unknown rule kind"),
        (MediationRule(1, 1, "number", "", "44"), "needs something to match"),
        (MediationRule(1, 1, "account", "a", ""), "needs the identifier"),
        (MediationRule(1, 1, "number", "0", "44", scope="account"), "names its identifier"),
        (MediationRule(1, 1, "number", "0", "44", valid_from=START, valid_to=START), "after valid_from"),
        (MediationRule(1, 1, "account", "a", "b", min_length=3), "number rules only"),
        (MediationRule(1, 1, "rating_key", "", " "), "needs the rating key"),
    ],
)
def test_bad_rules_are_refused_in_words(rule: MediationRule, message: str) -> None:
    with pytest.raises(RuleError, match=message):
        RuleSet.build([rule])


_digits = st.text("0123456789", min_size=1, max_size=6)
_identifiers = st.sampled_from(["a1", "a2", "10.0.0.5", "gw1", "gw2"])
_moments = st.integers(0, 4).map(lambda d: START + timedelta(days=d))


@st.composite
def _rules(draw: st.DrawFn) -> list[MediationRule]:
    rules = []
    for index in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(REWRITING))
        scope = draw(st.sampled_from(["global", "account", "vendor"]))
        start = draw(st.none() | _moments)
        end = draw(st.none() | _moments)
        if start and end and end <= start:
            end = None
        rules.append(
            MediationRule(
                id=index + 1,
                position=draw(st.integers(0, 5)),
                kind=kind,
                match=draw(_digits) if kind == "number" else draw(_identifiers),
                replace=draw(st.text("0123456789", max_size=3)) if kind == "number" else draw(_identifiers),
                scope=scope,
                scope_value=None if scope == "global" else draw(_identifiers),
                valid_from=start,
                valid_to=end,
                min_length=draw(st.none() | st.integers(1, 8)) if kind == "number" else None,
            )
        )
    return rules


#: XDRs as (cld, account, vendor, connect time): numbers with blanks, dashes and plus signs.
_ROWS = st.lists(
    st.tuples(st.text("0123456789 -+", min_size=1, max_size=10), _identifiers, _identifiers, _moments),
    max_size=12,
)


@settings(max_examples=200, deadline=None)
@given(rules=_rules(), rows=_ROWS)
def test_vectorized_rules_equal_the_row_by_row_reading(
    rules: list[MediationRule], rows: list[tuple[str, str, str, datetime]]
) -> None:
    out = _apply(RuleSet.build(rules), _batch(rows))
    expected = [_reference(rules, row) for row in rows]
    got = list(
        zip(out["cld"].to_pylist(), out["account"].to_pylist(), out["vendor"].to_pylist(), strict=True)
    )
    assert got == expected


def test_services_are_classified_by_number_and_rating_keys_derived_from_them() -> None:
    rules = RuleSet.build(
        [
            MediationRule(1, 10, "service", "44800", "tollfree"),
            MediationRule(2, 20, "service", "449", "premium", scope="account", scope_value="a1"),
            MediationRule(3, 30, "rating_key", "", "{service}:inbound", scope="vendor", scope_value="gw2"),
            MediationRule(
                4, 40, "rating_key", "49", "germany-{service}", valid_from=START + timedelta(days=1)
            ),
        ]
    )
    batch = _batch(
        [
            ("448001234", "a1", "gw1", START),  # toll-free
            ("449001234", "a1", "gw2", START),  # premium for a1; inbound from gw2
            ("449001234", "a2", "gw1", START),  # not a1: voice
            ("4930123", "a2", "gw1", START),  # before the German key
            ("4930123", "a2", "gw1", START + timedelta(days=2)),
        ]
    ).append_column("service", pa.array(["voice", "voice", None, "sms", "voice"]))
    keys = rules.rating_keys(batch, batch.column("cld").combine_chunks())
    assert keys.to_pylist() == ["tollfree", "premium:inbound", "voice", "sms", "germany-voice"]
    assert RuleSet().rating_keys(batch, batch.column("cld").combine_chunks()).to_pylist() == [
        "voice",
        "voice",
        "voice",
        "sms",
        "voice",
    ]


@settings(max_examples=100, deadline=None)
@given(rules=_rules(), rows=_ROWS)
def test_the_keys_mediation_hands_to_rating_are_those_of_the_mediated_numbers(
    rules: list[MediationRule], rows: list[tuple[str, str, str, datetime]]
) -> None:
    context = MediationContext(
        accounts=Lookup.build(["a1", "a2"], [1, 2]),
        ownership=History.empty(),
        connections=Lookup.build(["gw1", "gw2"], [1, 2]),
        countries=PrefixNames.build(["4", "44"], ["X", "GB"]),
        destination_groups=PrefixNames.build([], []),
        rules=RuleSet.build(rules),
    )
    batch = _batch(rows)
    batch = batch.append_column("service", pa.nulls(batch.num_rows, pa.string()))
    mediated, keys = mediate_keyed(batch, context)
    assert keys.tolist() == encode_numbers(mediated.column("number")).tolist()
