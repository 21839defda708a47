"""What ``template add`` refuses: a template is checked whole when it is saved, not at ingest."""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

import pytest

from rerate.domain.expressions import ExpressionError, compile_expression
from rerate.domain.xdr_templates import TemplateError, parse_template

GOOD: dict[str, Any] = {
    "source": {"header": True},
    "fields": {
        "source_id": "id",
        "connect_time": {"column": "when", "format": "iso"},
        "duration": "secs",
        "cld": "called",
    },
    "answered": {"column": "disposition", "values": ["ANSWERED"]},
    "expressions": {"cld": "'44' + value"},
}


def _with(path: str, value: Any) -> dict[str, Any]:
    data = copy.deepcopy(GOOD)
    *parents, last = path.split(".")
    target = data
    for key in parents:
        target = target[key]
    target[last] = value
    return data


def test_the_good_template_is_accepted() -> None:
    template = parse_template(GOOD, "good")
    assert template.expressions == {"cld": "'44' + value"} and template.answered.column == "disposition"
    # An empty constant for an optional field is a choice (no account), kept as templates saved it.
    assert parse_template(_with("fields.account", {"value": ""}), "ok").fields["account"][0].value == ""


@pytest.mark.parametrize(
    ("path", "value", "reason"),
    [
        ("fields.source_id", {"hash": []}, "names no column"),
        ("fields.source_id", ["id", {"hash": []}], "names no column"),
        ("fields.source_id", {"column": ""}, "give a column name"),
        ("fields.source_id", "  ", "give a column name"),
        ("fields.source_id", {"value": ""}, "constant for a required field must not be empty"),
        ("fields.source_id", {"value": True}, "constant value must be quoted text"),
        ("expressions.cld", "foo + value", r"unknown name\(s\) foo"),
        ("expressions.cld", 5, "give the expression as quoted text"),
        ("source.delimiter", 5, "one character each"),
        ("source.delimiter", '"', "differ from each other"),
        ("source.delimiter", "\n", "from a line break"),
        ("source.quote", ",", "differ from each other"),
        ("answered.extra", 1, r"answered: unknown key\(s\) extra"),
        ("answered.column", "", "answered.column: give a column name"),
        ("description", ["a"], "description must be quoted text"),
    ],
)
def test_a_template_that_could_not_work_is_refused_with_its_reason(
    path: str, value: Any, reason: str
) -> None:
    with pytest.raises(TemplateError, match=reason):
        parse_template(_with(path, value), "bad")


def test_min_columns_must_be_a_number_in_range() -> None:
    headerless = _with(
        "source", {"header": False, "columns": ["id", "when", "secs", "called", "disposition"]}
    )
    assert parse_template(_with("source", {**headerless["source"], "min_columns": 4}), "ok").min_columns == 4
    with pytest.raises(TemplateError, match="whole number"):
        parse_template(_with("source", {**headerless["source"], "min_columns": "4"}), "bad")
    with pytest.raises(TemplateError, match="between 1 and 5"):
        parse_template(_with("source", {**headerless["source"], "min_columns": 6}), "bad")


def test_an_expression_names_what_it_reads_and_why_it_failed() -> None:
    rule = compile_expression("round(num(value) / 1000) + fx_rate if value else 0")
    assert rule.names == {"value", "fx_rate"}  # round and num are called, not read
    with pytest.raises(ExpressionError, match=r"failed on '60000': division by zero$"):
        compile_expression("num(value) / 0").evaluate("60000")
    with pytest.raises(ExpressionError, match=r"failed on '0': division by zero$"):
        compile_expression("num(value) / 0").evaluate("0")  # 0/0: decimal's DivisionUndefined
    assert compile_expression("num(value) / 4").evaluate("1") == Decimal("0.25")
