"""Pure survey logic: XLSForm parsing, answer validation, paper rows, and the frames' pure analysis path.

Workbooks are built in memory with openpyxl (no files, no database).
"""

from __future__ import annotations

import io
import math

import numpy as np
import pandas as pd
import pytest
from openpyxl import Workbook

from core.csvio import ImportRejected
from surveys.definitions import AnswerValue, QuestionSpec, likert_choices, parse_choices, validate_answers
from surveys.frames import callback_summary, index_from_answers, intervals_from_sums
from surveys.imports import parse_xlsform, read_paper
from surveys.models import QuestionKind
from surveys.stats import bounded_interval, mean_t_interval, satisfaction_index, wilson_interval

SAT = [
    ["sat", str(i), label]
    for i, label in enumerate(["很不满意", "不太满意", "一般", "比较满意", "很满意"], 1)
]


def workbook(survey, choices=None, settings=None):
    book = Workbook()
    sheet = book.active
    sheet.title = "survey"
    for row in survey:
        sheet.append(row)
    if choices is not None:
        sheet = book.create_sheet("choices")
        for row in choices:
            sheet.append(row)
    if settings is not None:
        sheet = book.create_sheet("settings")
        for row in settings:
            sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def rejected(data):
    with pytest.raises(ImportRejected) as info:
        parse_xlsform(data)
    return [(e.line, e.column, e.message) for e in info.value.errors]


def test_supported_subset_is_read_with_groups_likert_and_dont_know():
    data = workbook(
        [
            ["type", "name", "label::Chinese (zh)", "required", "hint", "indicator", "service_area"],
            ["note", "intro", "欢迎参加调查", "", "", "", ""],
            ["begin group", "g_env", "环境", "", "", "", ""],
            ["select_one sat", "q_env", "环境卫生", "yes", "近三个月", "GG-01", "环卫"],
            ["select_one yn", "q_know", "是否了解", "no", "", "", ""],
            ["end group", "", "", "", "", "", ""],
            ["select_multiple need", "q_need", "需要的服务", "", "", "", ""],
            ["decimal", "q_km", "距离", "TRUE", "", "", ""],
            ["integer", "q_years", "居住年数", "", "", "", ""],
            ["text", "q_say", "建议", "", "", "", ""],
        ],
        [
            ["list_name", "name", "label"],
            *SAT,
            ["sat", "dk", "不了解"],
            ["yn", "y", "是"],
            ["yn", "n", "否"],
            ["need", "a", "养老"],
            ["need", "b", "托育"],
        ],
        [["form_title", "form_id"], ["2026 三季度满意度", "sat"]],
    )
    spec = parse_xlsform(data)
    assert spec.title == "2026 三季度满意度"
    assert [(s.name, s.title) for s in spec.sections] == [("", ""), ("g_env", "环境"), ("", "")]
    by_name = {q.name: q for q in spec.questions()}
    assert [q.name for q in spec.questions()] == [
        "intro",
        "q_env",
        "q_know",
        "q_need",
        "q_km",
        "q_years",
        "q_say",
    ]
    env = by_name["q_env"]
    assert (env.kind, env.required, env.dont_know, env.dont_know_label) == (
        QuestionKind.likert5,
        True,
        True,
        "不了解",
    )
    assert env.choices == likert_choices(["很不满意", "不太满意", "一般", "比较满意", "很满意"])
    assert (env.hint, env.indicator_code, env.service_area) == ("近三个月", "GG-01", "环卫")
    assert by_name["q_know"].kind == QuestionKind.single and not by_name["q_know"].dont_know
    assert by_name["q_need"].kind == QuestionKind.multiple
    assert by_name["q_km"].kind == QuestionKind.number and by_name["q_km"].required
    assert by_name["q_years"].kind == QuestionKind.integer
    assert by_name["intro"].kind == QuestionKind.note


def test_likert_needs_exactly_one_to_five_in_order_else_it_is_a_single_choice():
    shuffled = [["sat", "2", "b"], ["sat", "1", "a"], ["sat", "3", "c"], ["sat", "4", "d"], ["sat", "5", "e"]]
    spec = parse_xlsform(
        workbook(
            [["type", "name", "label"], ["select_one sat", "q", "Q"]],
            [["list_name", "name", "label"], *shuffled],
        )
    )
    assert spec.questions()[0].kind == QuestionKind.single
    spec = parse_xlsform(
        workbook(
            [["type", "name", "label"], ["select_one sat", "q", "Q"]],
            [["list_name", "name", "label"], *SAT, ["sat", "99", "不适用"]],
        )
    )
    assert (
        spec.questions()[0].kind == QuestionKind.likert5 and spec.questions()[0].dont_know_label == "不适用"
    )


def test_every_problem_is_listed_with_sheet_row_and_reason():
    data = workbook(
        [
            ["type", "name", "label", "relevant", "constraint"],
            ["calculate", "c1", "", "", ""],
            ["begin_repeat", "r1", "重复", "", ""],
            ["select_one missing", "q1", "Q1", "", ""],
            ["text", "q2", "Q2", "${q1} = '1'", ". > 0"],
            ["text", "q2", "again", "", ""],
            ["integer", "2bad", "bad name", "", ""],
            ["select_one", "q3", "no list", "", ""],
            ["end_group", "", "", "", ""],
            ["begin_group", "g", "G", "", ""],
        ],
        [["list_name", "name", "label"], ["yn", "", "缺名"]],
    )
    problems = rejected(data)
    messages = {(line, message) for line, _, message in problems}
    assert all(column.startswith(("survey 表", "choices 表")) for _, column, _ in problems)
    assert (1, "不支持的列“relevant”（本系统不支持跳转、校验表达式等）") in messages
    assert (1, "不支持的列“constraint”（本系统不支持跳转、校验表达式等）") in messages
    assert (2, "不支持的题型“calculate”") in messages
    assert (3, "不支持的题型“begin_repeat”") in messages
    assert (4, "选项列表“missing”在 choices 表中不存在") in messages
    assert (6, "题目名称“q2”重复") in messages
    assert (7, "题目名称“2bad”无效（字母开头，仅字母、数字、下划线）") in messages
    assert (8, "题型“select_one”缺少选项列表名") in messages
    assert (9, "end_group 没有对应的 begin_group") in messages
    assert (10, "分组没有 end_group 结束") in messages
    assert (2, "选项缺少 list_name 或 name") in messages


@pytest.mark.parametrize(
    ("survey", "choices", "message"),
    [
        ([["name", "label"], ["q", "Q"]], None, "缺少列“type”"),
        (
            [
                ["type", "name", "label"],
                ["text", "q", "Q"],
                ["begin_group", "a", "A"],
                ["begin_group", "b", "B"],
            ],
            None,
            "不支持嵌套分组",
        ),
        (
            [["type", "name", "label", "required"], ["text", "q", "Q", "maybe"]],
            None,
            "required 只能是 yes 或 no",
        ),
        (
            [["type", "name", "label"], ["select_multiple sat", "q", "Q"]],
            [["list_name", "name", "label"], *SAT, ["sat", "dk", "不了解"]],
            "多选题不支持“不了解”选项",
        ),
        (
            [["type", "name", "label"], ["select_one one", "q", "Q"]],
            [["list_name", "name", "label"], ["one", "a", "A"]],
            "至少需要 2 个选项",
        ),
        ([["type", "name", "label"]], None, "问卷中没有任何题目"),
    ],
)
def test_single_problems(survey, choices, message):
    assert any(message in m for _, _, m in rejected(workbook(survey, choices)))


def test_not_a_workbook_and_no_survey_sheet():
    assert rejected(b"plain text")[0][2].startswith("无法读取文件")
    book = Workbook()
    book.active.title = "other"
    buffer = io.BytesIO()
    book.save(buffer)
    assert rejected(buffer.getvalue()) == [(1, "survey 表", "缺少 survey 工作表")]


# ------------------------------------------------------------------------------------------- validation


QUESTIONS = [
    QuestionSpec("lk", "量表", QuestionKind.likert5, True, choices=likert_choices(), dont_know=True),
    QuestionSpec("one", "单选", QuestionKind.single, choices=[["a", "A"], ["b", "B"]]),
    QuestionSpec("many", "多选", QuestionKind.multiple, choices=[["a", "A"], ["b", "B"]]),
    QuestionSpec("num", "整数", QuestionKind.integer),
    QuestionSpec("dec", "数值", QuestionKind.number),
    QuestionSpec("note", "说明", QuestionKind.note, required=True),
]


def test_validate_answers_encodes_each_kind():
    answers, errors = validate_answers(
        QUESTIONS, {"lk": ["4"], "one": ["b"], "many": ["b, a ,b"], "num": ["12"], "dec": ["2.5"]}
    )
    assert errors == {}
    assert answers == {
        "lk": AnswerValue(4.0, "4"),
        "one": AnswerValue(None, "b"),
        "many": AnswerValue(None, "b a"),
        "num": AnswerValue(12.0),
        "dec": AnswerValue(2.5),
    }
    answers, errors = validate_answers(QUESTIONS, {"lk": ["不了解"]})
    assert answers == {"lk": AnswerValue(dont_know=True)} and errors == {}


def test_validate_answers_errors():
    _, errors = validate_answers(
        QUESTIONS, {"lk": ["0"], "one": ["a", "b"], "many": ["c"], "num": ["1.5"], "dec": ["inf"]}
    )
    assert errors == {
        "lk": "选项不存在：0",
        "one": "此题只能选择一个答案",
        "many": "选项不存在：c",
        "num": "请填写整数",
        "dec": "请填写数字",
    }
    assert validate_answers(QUESTIONS, {})[1] == {"lk": "此题为必答题"}


def test_parse_choices():
    assert parse_choices("甲\n乙\n") == [["1", "甲"], ["2", "乙"]]
    assert parse_choices("a=甲\nb = 乙") == [["a", "甲"], ["b", "乙"]]


def test_read_paper_rows():
    rows = [
        (2, {"instance_id": "1", "community": "C1", "gender": "男", "lk": "5", "age_band": "60+"}),
        (3, {"instance_id": "2", "community": "C9", "lk": "5"}),
        (4, {"instance_id": "1", "community": "C1", "lk": "dk"}),
        (5, {"instance_id": "3", "community": "C1", "lk": "", "gender": "?"}),
    ]
    batch = read_paper(rows, QUESTIONS, {"C1": "D1"})
    assert [(r.line, r.instance_id, r.gender, r.age_band, r.district_code) for r in batch.rows] == [
        (2, "1", "male", "60+", "D1")
    ]
    assert [(e.line, e.column) for e in batch.errors] == [
        (3, "community"),
        (4, "instance_id"),
        (5, "gender"),
        (5, "lk"),
    ]


# ------------------------------------------------------------------------------------------------ frames


def test_intervals_from_sums_equal_the_t_interval_of_the_stats_module():
    values = np.array([100.0, 75.0, 50.0, 50.0, 25.0, 100.0])
    mean, sd, low, high = intervals_from_sums([values.size], [values.sum()], [np.square(values).sum()])
    centre, t_low, t_high = mean_t_interval(values)
    # The same t half-width, redrawn on the logit scale so the index stays inside 0–100.
    b_low, b_high = bounded_interval(centre, (t_high - t_low) / 2)
    assert (mean[0], low[0], high[0]) == pytest.approx((centre, float(b_low), float(b_high)))
    assert 0 < low[0] < t_high and high[0] <= 100
    assert sd[0] == pytest.approx(values.std(ddof=1))
    _, _, low1, _ = intervals_from_sums([1], [50.0], [2500.0])
    assert math.isnan(low1[0])


def test_index_from_answers_matches_satisfaction_index_per_community():
    # Hand-worked: community A respondents (5, 4), (3, dk), (dk, dk) → 87.5, 50, left out → index 68.75.
    answers = pd.DataFrame(
        {
            "community_code": ["A", "A", "A", "A", "A", "A", "B", "B"],
            "respondent": [1, 1, 2, 2, 3, 3, 4, 4],
            "question": ["q1", "q2"] * 4,
            "value": [5, 4, 3, np.nan, np.nan, np.nan, 1, 2],
        }
    )
    out = index_from_answers(answers)
    a = out[(out["community_code"] == "A") & (out["level"] == "overall")].iloc[0]
    expected = satisfaction_index(pd.DataFrame({"q1": [5, 3, np.nan], "q2": [4, np.nan, np.nan]}))
    assert a["index"] == pytest.approx(68.75) == pytest.approx(expected.index)
    assert (a["low"], a["high"]) == pytest.approx((expected.low, expected.high))
    q2 = out[(out["community_code"] == "A") & (out["code"] == "q2")].iloc[0]
    assert q2["n"] == 1 and q2["index"] == 75.0


def test_callback_summary_uses_wilson_intervals():
    ratings = pd.DataFrame(
        {
            "community_code": ["C1"] * 5 + ["C2"],
            "category_code": ["HW"] * 5 + ["WY"],
            "satisfaction": [
                "satisfied",
                "basically_satisfied",
                "dissatisfied",
                "satisfied",
                None,
                "dissatisfied",
            ],
            "solved": [True, True, False, None, None, False],
        }
    )
    out = callback_summary(ratings).set_index(["community_code", "category_code"])
    c1 = out.loc[("C1", "HW")]
    assert (c1["n"], c1["satisfied"], c1["rate"]) == (4, 3, 0.75)
    assert (c1["low"], c1["high"]) == pytest.approx(wilson_interval(3, 4))
    assert c1["solved_rate"] == pytest.approx(2 / 3)
    assert out.loc[("C2", "WY")]["rate"] == 0.0
    with pytest.raises(ValueError, match="未知的满意度取值"):
        callback_summary(ratings.assign(satisfaction="great"))
    with pytest.raises(ValueError, match="缺少列"):
        callback_summary(ratings.drop(columns="solved"))
