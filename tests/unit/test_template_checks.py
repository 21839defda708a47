"""What ``template add`` refuses: a template is checked whole when it is saved, not at ingest."""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

import pytest

from rerate.domain.expressions import ExpressionError, compile_expression
from rerate.domain.xdr_templates import TemplateError, XdrTemplate, check_new_template, parse_template

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


def _saved(data: dict[str, Any], name: str) -> XdrTemplate:
    """As ``template add`` checks a template before saving it."""
    template = parse_template(data, name)
    check_new_template(data)
    return template


def _with(path: str, value: Any) -> dict[str, Any]:
    data = copy.deepcopy(GOOD)
    *parents, last = path.split(".")
    target = data
    for key in parents:
        target = target[key]
    target[last] = value
    return data


def test_the_good_template_is_accepted() -> None:
    template = _saved(GOOD, "good")
    assert template.expressions == {"cld": "'44' + value"} and template.answered.column == "disposition"
    # An empty constant for an optional field is a choice (no account), kept as templates saved it.
    assert _saved(_with("fields.account", {"value": ""}), "ok").fields["account"][0].value == ""


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
        ("source.delimiter", 5, "quoted characters"),
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
        _saved(_with(path, value), "bad")


def test_min_columns_must_be_a_number_in_range() -> None:
    headerless = _with(
        "source", {"header": False, "columns": ["id", "when", "secs", "called", "disposition"]}
    )
    assert _saved(_with("source", {**headerless["source"], "min_columns": 4}), "ok").min_columns == 4
    for wrong in ("4", 6):
        with pytest.raises(TemplateError, match="between 1 and 5"):
            _saved(_with("source", {**headerless["source"], "min_columns": wrong}), "bad")
    with pytest.raises(TemplateError, match="whole number"):
        _saved(_with("source", {**headerless["source"], "min_columns": True}), "bad")


def test_a_template_saved_before_the_stricter_checks_still_reads() -> None:
    """What ``template add`` refuses today may be in a catalog already, and it loaded files then
    (an expression with a fallback it never reaches, a quote equal to the delimiter in a file
    with no quotes): reading it back must not stop its ingests."""
    saved = _with("expressions.cld", "value if value != '' else dflt")
    saved["source"] = {"header": True, "delimiter": ";", "quote": ";"}
    template = parse_template(saved, "old")
    assert (template.delimiter, template.quote, template.expressions["cld"]) == (
        ";",
        ";",
        saved["expressions"]["cld"],
    )
    with pytest.raises(TemplateError, match="differ from each other"):
        check_new_template(saved)


def test_an_expression_names_what_it_reads_and_why_it_failed() -> None:
    rule = compile_expression("round(num(value) / 1000) + fx_rate if value else 0")
    assert rule.names == {"value", "fx_rate"}  # round and num are called, not read
    with pytest.raises(ExpressionError, match=r"failed on '60000': division by zero$"):
        compile_expression("num(value) / 0").evaluate("60000")
    with pytest.raises(ExpressionError, match=r"failed on '0': division by zero$"):
        compile_expression("num(value) / 0").evaluate("0")  # 0/0: decimal's DivisionUndefined
    assert compile_expression("num(value) / 4").evaluate("1") == Decimal("0.25")
