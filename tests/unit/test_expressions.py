"""The safe XLSForm expression subset: known values, XPath comparison rules, and what is refused."""

from __future__ import annotations

import math

import pytest

from surveys.expressions import Unsupported, evaluate, parse, references, to_json, truthy


@pytest.mark.parametrize(
    ("text", "values", "current", "expected"),
    [
        (". >= 18 and . <= 120", {}, 25.0, True),
        (". >= 18 and . <= 120", {}, 12.0, False),
        (". >= 18", {}, "", False),  # unanswered is NaN as a number: never >= anything
        ("${q} = '1' or ${q} = '2'", {"q": "2"}, "", True),
        ("${q} = 1", {"q": "1"}, "", True),  # string against number compares as numbers
        ("${q} = '01'", {"q": "1"}, "", False),  # two strings compare as strings
        ("${q} != ''", {}, "", False),  # a missing answer is the empty string
        ("selected(${need}, 'b')", {"need": "a b"}, "", True),
        ("selected(${need}, 'c')", {"need": "a b"}, "", False),
        ("count-selected(.) <= 2", {}, "a b c", False),
        ("not(${x} = 'y')", {"x": "n"}, "", True),
        ("string-length(.) >= 2", {}, "好的", True),
        ("regex(., '^1[3-9][0-9]{9}$')", {}, "13812345678", True),
        ("regex(., '^1[3-9][0-9]{9}$')", {}, "1381234567", False),
        ("if(${a} > 3, 'x', 'y') = 'y'", {"a": 2.0}, "", True),
        ("coalesce(${a}, 'none') = 'none'", {}, "", True),
        ("contains(${t}, '垃圾') or starts-with(${t}, '噪')", {"t": "噪音"}, "", True),
        ("true() and not(false())", {}, "", True),
    ],
)
def test_known_values(text, values, current, expected):
    assert truthy(text, values, current) is expected


def test_arithmetic_and_precedence():
    assert evaluate(parse("10 div 4 + 7 mod 3 - -1"), {}) == 4.5
    assert evaluate(parse("2 + 3 * 4"), {}) == 14.0
    assert evaluate(parse("(2 + 3) * 4"), {}) == 20.0
    assert math.isnan(evaluate(parse("0 div 0"), {}))
    assert evaluate(parse("int(7.9) + round(2.567, 2)"), {}) == pytest.approx(9.57)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (". >>> 1", "表达式不在在线问卷支持的范围内"),
        ("today() > 1", "不支持函数 today()"),
        ("pulldata('f', 'c', 'k', ${q})", "不支持函数 pulldata()"),
        ("selected(${q})", "函数 selected() 的参数个数不对"),
        ("regex(., ${q})", "regex() 的模式必须是不超过 200 字符的字符串"),
        ("regex(., '(')", "regex() 的模式无效"),
        ("${zz} = 1", "引用的题目“zz”不是在线问卷中的题目"),
        ("__import__('os')", "表达式不在在线问卷支持的范围内"),
        ("/data/q = 1", "表达式不在在线问卷支持的范围内"),
    ],
)
def test_outside_the_subset_is_unsupported_with_a_chinese_reason(text, reason):
    with pytest.raises(Unsupported, match=reason.replace("(", r"\(").replace(")", r"\)")):
        parse(text, {"q"})


def test_references_and_json_tree_for_the_page_script():
    tree = parse("${a} = '1' and selected(${b}, 'x')")
    assert references(tree) == {"a", "b"}
    assert to_json(tree) == [
        "and",
        ["cmp", "=", ["ref", "a"], ["lit", "1"]],
        ["call", "selected", ["ref", "b"], ["lit", "x"]],
    ]
