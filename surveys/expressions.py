"""A safe subset of the XLSForm (ODK XPath) expression language for ``relevant`` and ``constraint``.

Expressions are parsed with a lark grammar into a small tree of tuples and evaluated by walking it —
never with ``eval``. Supported: ``${name}`` references, ``.`` (the question's own answer), numbers and
quoted strings, ``or and = != < <= > >= + - * div mod``, unary minus, parentheses, and the functions in
:data:`FUNCTIONS` (``selected``, ``count-selected``, ``not``, ``string-length``, ``regex``, ``if``…).
Values follow XPath 1.0: an unanswered question is the empty string, ``=`` compares as numbers when one
side is a number and as strings otherwise, ``<`` and arithmetic compare numbers (NaN is never equal).
An expression outside the subset is :class:`Unsupported`; the importer keeps it and reports it.

The same tree, as JSON (:func:`to_json`), is evaluated by the public form's script to show and hide
questions as the resident answers; the server's evaluation on submit is what counts.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import Any

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import LarkError

Node = tuple[Any, ...]
Value = str | float | bool
MAX_LENGTH = 1000
MAX_REGEX = 200

GRAMMAR = r"""
?start: or_expr
?or_expr: and_expr | or_expr "or" and_expr -> or_
?and_expr: cmp_expr | and_expr "and" cmp_expr -> and_
?cmp_expr: sum_expr | cmp_expr CMP sum_expr -> cmp
?sum_expr: product | sum_expr ADD product -> arith
?product: unary | product MUL unary -> arith
?unary: atom | "-" unary -> neg
?atom: NUMBER -> number
     | STRING -> string
     | REF -> ref
     | "." -> current
     | FUNC "(" [or_expr ("," or_expr)*] ")" -> call
     | "(" or_expr ")"
CMP: "!=" | "<=" | ">=" | "=" | "<" | ">"
ADD: "+" | "-"
MUL: "*" | /div\b/ | /mod\b/
NUMBER: /\d+(\.\d*)?|\.\d+/
STRING: /'[^']*'|"[^"]*"/
REF: /\$\{[A-Za-z_][A-Za-z0-9_.-]*\}/
FUNC.2: /[a-z][a-z0-9-]*(?=\s*\()/
%ignore /\s+/
"""


class Unsupported(ValueError):
    """An expression outside the supported subset (the message says why, in Chinese)."""


@v_args(inline=True)
class _ToTree(Transformer[Token, Node]):
    def or_(self, a: Node, b: Node) -> Node:
        return ("or", a, b)

    def and_(self, a: Node, b: Node) -> Node:
        return ("and", a, b)

    def cmp(self, a: Node, op: Token, b: Node) -> Node:
        return ("cmp", str(op), a, b)

    def arith(self, a: Node, op: Token, b: Node) -> Node:
        return ("arith", str(op), a, b)

    def neg(self, a: Node) -> Node:
        return ("neg", a)

    def number(self, token: Token) -> Node:
        return ("lit", float(token))

    def string(self, token: Token) -> Node:
        return ("lit", str(token)[1:-1])

    def ref(self, token: Token) -> Node:
        return ("ref", str(token)[2:-1])

    def current(self) -> Node:
        return ("cur",)

    def call(self, name: Token, *args: Node | None) -> Node:
        return ("call", str(name), *(a for a in args if a is not None))


@lru_cache(maxsize=1)
def _parser() -> Lark:
    return Lark(GRAMMAR, parser="lalr", maybe_placeholders=False)


def _number(value: Value) -> float:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, float):
        return value
    try:
        return float(value.strip()) if value.strip() else math.nan
    except ValueError:
        return math.nan


def _boolean(value: Value) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, float):
        return not (value == 0 or math.isnan(value))
    return value != ""


def _string(value: Value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        return str(int(value)) if value.is_integer() else repr(value)
    return value


def _regex(text: Value, pattern: Value) -> bool:
    # Patterns come from the evaluator's form (checked at import), answers are at most 2,000 characters.
    return re.search(_string(pattern), _string(text)) is not None


def _round(value: Value, places: Value = 0.0) -> float:
    number, digits = _number(value), int(_number(places)) if not math.isnan(_number(places)) else 0
    return number if math.isnan(number) else float(round(number, digits))


def _if(condition: Value, yes: Value, no: Value) -> Value:
    return yes if _boolean(condition) else no


FUNCTIONS: dict[str, tuple[int, int, Callable[..., Value]]] = {
    # name: (least arguments, most arguments, implementation)
    "selected": (2, 2, lambda s, c: _string(c).strip() in _string(s).split()),
    "count-selected": (1, 1, lambda s: float(len(_string(s).split()))),
    "not": (1, 1, lambda v: not _boolean(v)),
    "true": (0, 0, lambda: True),
    "false": (0, 0, lambda: False),
    "boolean": (1, 1, _boolean),
    "number": (1, 1, _number),
    "int": (1, 1, lambda v: float(math.trunc(_number(v))) if math.isfinite(_number(v)) else math.nan),
    "string": (1, 1, _string),
    "string-length": (1, 1, lambda v: float(len(_string(v)))),
    "contains": (2, 2, lambda a, b: _string(b) in _string(a)),
    "starts-with": (2, 2, lambda a, b: _string(a).startswith(_string(b))),
    "ends-with": (2, 2, lambda a, b: _string(a).endswith(_string(b))),
    "concat": (1, 20, lambda *v: "".join(_string(x) for x in v)),
    "coalesce": (2, 2, lambda a, b: a if _string(a) != "" else b),
    "if": (3, 3, _if),
    "round": (1, 2, _round),
    "regex": (2, 2, _regex),
}


def _check(node: Node, names: set[str] | None) -> None:
    kind = node[0]
    if kind == "ref" and names is not None and node[1] not in names:
        raise Unsupported(f"引用的题目“{node[1]}”不是在线问卷中的题目")
    if kind == "call":
        name, args = node[1], node[2:]
        if name not in FUNCTIONS:
            raise Unsupported(f"不支持函数 {name}()")
        least, most, _impl = FUNCTIONS[name]
        if not least <= len(args) <= most:
            raise Unsupported(f"函数 {name}() 的参数个数不对")
        if name == "regex":
            pattern = args[1]
            if pattern[0] != "lit" or not isinstance(pattern[1], str) or len(pattern[1]) > MAX_REGEX:
                raise Unsupported("regex() 的模式必须是不超过 200 字符的字符串")
            try:
                re.compile(pattern[1])
            except re.error as exc:
                raise Unsupported(f"regex() 的模式无效：{exc}") from exc
    for child in node[1:]:
        if isinstance(child, tuple):
            _check(child, names)


def parse(text: str, names: set[str] | None = None) -> Node:
    """The tree of an expression, or :class:`Unsupported`; ``names`` limits which ``${…}`` may appear."""
    if len(text) > MAX_LENGTH:
        raise Unsupported("表达式过长（最多 1000 字符）")
    try:
        tree = _ToTree().transform(_parser().parse(text))
    except LarkError as exc:
        raise Unsupported("表达式不在在线问卷支持的范围内") from exc
    _check(tree, names)
    return tree


def references(node: Node) -> set[str]:
    """Question names an expression refers to with ``${…}``."""
    if node[0] == "ref":
        return {node[1]}
    return set().union(*(references(c) for c in node[1:] if isinstance(c, tuple)))


def _compare(op: str, a: Value, b: Value) -> bool:
    if op in ("=", "!="):
        if isinstance(a, bool) or isinstance(b, bool):
            equal = _boolean(a) == _boolean(b)
        elif isinstance(a, float) or isinstance(b, float):
            equal = _number(a) == _number(b)
        else:
            equal = a == b
        return equal if op == "=" else not equal
    x, y = _number(a), _number(b)
    return {"<": x < y, "<=": x <= y, ">": x > y, ">=": x >= y}[op]


def _arith(op: str, a: Value, b: Value) -> float:
    x, y = _number(a), _number(b)
    if op == "+":
        return x + y
    if op == "-":
        return x - y
    if op == "*":
        return x * y
    if y == 0:
        return math.nan if op == "mod" or x == 0 else math.copysign(math.inf, x)
    return x / y if op == "div" else math.fmod(x, y)


def evaluate(node: Node, values: Mapping[str, Value], current: Value = "") -> Value:
    """The value of a parsed expression given answers by name (unanswered: "") and the current answer."""
    kind = node[0]
    if kind == "lit":
        return node[1]
    if kind == "ref":
        return values.get(node[1], "")
    if kind == "cur":
        return current
    if kind == "or":
        return _boolean(evaluate(node[1], values, current)) or _boolean(evaluate(node[2], values, current))
    if kind == "and":
        return _boolean(evaluate(node[1], values, current)) and _boolean(evaluate(node[2], values, current))
    if kind == "neg":
        return -_number(evaluate(node[1], values, current))
    if kind == "cmp":
        return _compare(node[1], evaluate(node[2], values, current), evaluate(node[3], values, current))
    if kind == "arith":
        return _arith(node[1], evaluate(node[2], values, current), evaluate(node[3], values, current))
    if kind == "call":
        return FUNCTIONS[node[1]][2](*(evaluate(a, values, current) for a in node[2:]))
    raise Unsupported(f"未知的表达式节点 {kind}")


@lru_cache(maxsize=1024)
def _parsed(text: str) -> Node:
    return parse(text)


def truthy(text: str, values: Mapping[str, Value], current: Value = "") -> bool:
    """Parse (once per text) and evaluate ``text`` to a boolean (the XPath ``boolean()`` of its value)."""
    return _boolean(evaluate(_parsed(text), values, current))


def to_json(node: Node) -> list[Any]:
    """The tree as nested lists, for the page script."""
    return [to_json(c) if isinstance(c, tuple) else c for c in node]


def check_all(texts: Sequence[str], names: set[str]) -> list[str]:
    """The Chinese reason for each expression that is not supported ("" when it is)."""
    out = []
    for text in texts:
        try:
            parse(text, names)
        except Unsupported as exc:
            out.append(str(exc))
        else:
            out.append("")
    return out
