"""Post-processing rules as safe expressions: ``value * 1.05``, ``"44" + value``, ``value * fx("EUR")``.

An expression is parsed with :mod:`ast` and only a small whitelist of nodes is
accepted (arithmetic, comparisons, ``x if c else y``, a few functions), so a
rule can never run code, touch files or loop.  Numbers are exact decimals:
``1.05`` in a rule is the decimal 1.05, never a binary float.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

Value = Decimal | str | bool


class ExpressionError(ValueError):
    """A rule that cannot be compiled, or that fails on a value."""


_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Mod: operator.mod,
}
_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}


def _round(value: Decimal, places: Decimal = Decimal(0)) -> Decimal:
    return value.quantize(Decimal(1).scaleb(-int(places)), rounding=ROUND_HALF_UP)


def _number(value: Value) -> Decimal:
    if isinstance(value, Decimal):
        return value
    try:
        return Decimal(str(value).strip().replace(",", "."))
    except InvalidOperation as exc:
        raise ExpressionError(f"{value!r} is not a number") from exc


def text_of(value: Value) -> str:
    """A value as rule text: whole decimals without a point, others exact."""
    return _text(value)


def _text(value: Value) -> str:
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value == value.to_integral_value() else format(value, "f")
    return str(value)


_FUNCTIONS: dict[str, Callable[..., Value]] = {
    "round": _round,
    "min": min,
    "max": max,
    "abs": abs,
    "num": _number,
    "str": _text,
    "upper": lambda v: _text(v).upper(),
    "lower": lambda v: _text(v).lower(),
    "strip": lambda v, chars=None: _text(v).strip(chars),
    "lstrip": lambda v, chars=None: _text(v).lstrip(chars),
    "replace": lambda v, old, new: _text(v).replace(old, new),
    "left": lambda v, n: _text(v)[: int(n)],
    "right": lambda v, n: _text(v)[-int(n) :] if int(n) else "",
}


@dataclass(frozen=True)
class Expression:
    """A compiled rule; call :meth:`evaluate` with the cell's value and the row's other fields."""

    source: str
    tree: ast.Expression
    #: Each number literal as the exact decimal it is written as (Python's parser makes floats).
    literals: dict[int, Decimal]

    @property
    def names(self) -> set[str]:
        """The names the rule reads (``value``, fields), not counting the functions it calls."""
        called = {id(n.func) for n in ast.walk(self.tree) if isinstance(n, ast.Call)}
        return {n.id for n in ast.walk(self.tree) if isinstance(n, ast.Name) and id(n) not in called}

    def evaluate(
        self,
        value: Value | None,
        fields: Mapping[str, Value | None] | None = None,
        exchange_rates: Mapping[str, Decimal] | None = None,
    ) -> Value:
        scope = dict(fields or {})
        scope["value"] = value
        rates = exchange_rates or {}

        def fx(currency: Value) -> Decimal:
            code = _text(currency).upper()
            if code not in rates:
                raise ExpressionError(f"no exchange rate stored for {code} (see 'rerate fx set')")
            return rates[code]

        try:
            result: Value = _eval(self.tree.body, scope, fx, self.literals)
            return result
        except ExpressionError:
            raise
        except (ArithmeticError, TypeError, ValueError, InvalidOperation) as exc:
            raise ExpressionError(f"rule {self.source!r} failed on {value!r}: {_failure(exc)}") from exc


def _failure(exc: Exception) -> str:
    """Why a rule failed, in words: the decimal module's own errors print as class lists."""
    # decimal raises its signals' base class with the signals in its arguments (0/0 is an
    # InvalidOperation carrying DivisionUndefined).
    signals = exc.args[0] if exc.args and isinstance(exc.args[0], list) else [type(exc)]
    if any(isinstance(s, type) and issubclass(s, ZeroDivisionError) for s in signals):
        return "division by zero"
    if isinstance(exc, InvalidOperation):
        return "not a valid operation on these numbers"
    if isinstance(exc, ArithmeticError):  # Overflow and the like
        return f"the result is out of range ({type(exc).__name__})"
    return str(exc)


def compile_expression(source: str) -> Expression:
    """Parse and check a rule; raises :class:`ExpressionError` naming what is not allowed."""
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"rule {source!r} is not a valid expression: {exc.msg}") from exc
    for node in ast.walk(tree):
        allowed = (
            ast.Expression,
            ast.BinOp,
            ast.UnaryOp,
            ast.BoolOp,
            ast.Compare,
            ast.IfExp,
            ast.Constant,
            ast.Name,
            ast.Load,
            ast.Call,
            ast.USub,
            ast.UAdd,
            ast.Not,
            ast.And,
            ast.Or,
            *_BINARY,
            *_COMPARE,
        )
        if not isinstance(node, allowed):
            raise ExpressionError(f"rule {source!r}: {type(node).__name__} is not allowed in rules")
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name) or node.func.id not in {*_FUNCTIONS, "fx"}:
                known = ", ".join(sorted({*_FUNCTIONS, "fx"}))
                raise ExpressionError(f"rule {source!r}: only the functions {known} are allowed")
            if node.keywords:
                raise ExpressionError(f"rule {source!r}: functions take positional arguments only")
        if isinstance(node, ast.Constant) and not isinstance(node.value, (int, float, str, bool)):
            raise ExpressionError(f"rule {source!r}: constant {node.value!r} is not allowed")
    literals: dict[int, Decimal] = {}
    text = source.strip()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, (int, float))
            and not isinstance(node.value, bool)
        ):
            written = ast.get_source_segment(text, node) or repr(node.value)
            try:
                number = Decimal(written.replace("_", ""))
            except InvalidOperation as exc:
                raise ExpressionError(f"rule {source!r}: {written!r} is not a decimal number") from exc
            if not number.is_finite():
                raise ExpressionError(f"rule {source!r}: {written!r} is not a finite number")
            literals[id(node)] = number
    return Expression(source, tree, literals)


def _eval(
    node: ast.expr, scope: dict[str, Any], fx: Callable[[Value], Decimal], literals: dict[int, Decimal]
) -> Any:
    def ev(child: ast.expr) -> Any:
        return _eval(child, scope, fx, literals)

    if isinstance(node, ast.Constant):
        if isinstance(node.value, (bool, str)):
            return node.value
        return literals[id(node)]  # 1.05 is the decimal 1.05, as written
    if isinstance(node, ast.Name):
        if node.id not in scope:
            raise ExpressionError(f"unknown name {node.id!r} (use value or a field name)")
        return scope[node.id]
    if isinstance(node, ast.BinOp):
        left, right = ev(node.left), ev(node.right)
        if isinstance(left, str) != isinstance(right, str):
            if isinstance(node.op, ast.Add):  # "44" + value joins text
                return _text(left) + _text(right)
            left, right = _number(left), _number(right)
        return _BINARY[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp):
        operand = ev(node.operand)
        if isinstance(node.op, ast.Not):
            return not operand
        return -_number(operand) if isinstance(node.op, ast.USub) else _number(operand)
    if isinstance(node, ast.BoolOp):  # short-circuits and gives an operand, as Python does
        result = None
        for operand in node.values:
            result = ev(operand)
            if bool(result) != isinstance(node.op, ast.And):
                return result
        return result
    if isinstance(node, ast.Compare):
        left = ev(node.left)
        for op, comparator in zip(node.ops, node.comparators, strict=True):
            right = ev(comparator)
            if isinstance(left, str) != isinstance(right, str):
                left, right = _number(left), _number(right)
            if not _COMPARE[type(op)](left, right):
                return False
            left = right
        return True
    if isinstance(node, ast.IfExp):
        return ev(node.body if ev(node.test) else node.orelse)
    if isinstance(node, ast.Call):
        assert isinstance(node.func, ast.Name)
        arguments = [ev(a) for a in node.args]
        if node.func.id == "fx":
            return fx(*arguments)
        return _FUNCTIONS[node.func.id](*arguments)
    raise ExpressionError(f"{type(node).__name__} is not allowed in rules")
