"""Pure survey logic: XLSForm parsing, answer validation, paper rows, and the frames' pure analysis path.

Workbooks are built in memory with openpyxl (no files, no database).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from core.csvio import ImportRejected
from surveys.definitions import AnswerValue, QuestionSpec, likert_choices, parse_choices, validate_answers
from surveys.frames import callback_summary, index_from_answers, intervals_from_sums
from surveys.imports import parse_xlsform, read_paper
from surveys.models import QuestionKind
from surveys.stats import bounded_interval, mean_t_interval, satisfaction_index, wilson_interval
from tests.xlsforms import SATISFACTION, kobo_form, xlsform_workbook

SAT = [
    ["sat", str(i), label]
    for i, label in enumerate(["很不满意", "不太满意", "一般", "比较满意", "很满意"], 1)
]


workbook = xlsform_workbook


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


def test_a_kobo_form_with_languages_metadata_relevant_constraint_and_calculate_is_accepted():
    # This form was refused outright before pyxform ("不支持的列“relevant”…").
    spec = parse_xlsform(kobo_form())
    assert spec.title == "2026 年三季度社区满意度"
    assert [s.title for s in spec.sections] == ["", "社区环境", ""]
    assert [q.name for q in spec.questions()] == ["intro", "q_env", "q_why", "q_years", "q_need", "q_later"]
    by_name = {q.name: q for q in spec.questions()}
    env = by_name["q_env"]
    assert (env.kind, env.required, env.label, env.hint, env.indicator_code) == (
        QuestionKind.likert5,
        True,
        "环境卫生",
        "近三个月",
        "GG-01",
    )
    assert env.choices == likert_choices(SATISFACTION) and env.dont_know and env.dont_know_label == "不了解"
    assert env.translations["label"] == {"中文 (zh)": "环境卫生", "English (en)": "Sanitation"}
    assert env.translations["hint"]["English (en)"] == "Last 3 months"
    assert env.translations["choices"]["5"]["English (en)"] == "Very satisfied"
    assert by_name["intro"].kind == QuestionKind.note and by_name["intro"].label == "欢迎参加满意度调查"
    why = by_name["q_why"]
    assert why.relevant == "${q_env} = '1' or ${q_env} = '2'" and why.extras == {"appearance": "multiline"}
    years = by_name["q_years"]
    assert (years.constraint, years.constraint_message) == (". >= 0 and . <= 100", "请填写 0–100 之间的整数")
    assert years.translations["constraint_message"]["English (en)"] == "Between 0 and 100"
    assert by_name["q_need"].constraint == "count-selected(.) <= 2"
    # A relevant on a calculate field is outside the subset: kept, not enforced, reported.
    later = by_name["q_later"]
    assert later.relevant == "" and later.extras == {"relevant": "${years_x2} > 10"}
    assert spec.extras["calculate"] == [{"name": "years_x2", "calculation": "${q_years} * 2", "row": 14}]
    assert spec.extras["metadata"] == ["start", "end", "today", "deviceid", "username"]
    notes = [(n.line, n.message) for n in spec.notes]
    assert notes == [
        (2, "元数据字段 start 已接受，在线问卷不采集"),
        (3, "元数据字段 end 已接受，在线问卷不采集"),
        (4, "元数据字段 today 已接受，在线问卷不采集"),
        (5, "元数据字段 deviceid 已接受，在线问卷不采集"),
        (6, "元数据字段 username 已接受，在线问卷不采集"),
        (10, "列“appearance”在线问卷不使用，已保留在定义中（第 10 行）"),
        (14, "计算字段 years_x2（calculate）已保留，在线问卷不计算"),
        (
            15,
            "relevant 表达式“${years_x2} > 10”引用的题目“years_x2”不是在线问卷中的题目，在线问卷不执行（已保留原式）",
        ),
    ]


def test_kobo_relevant_and_constraint_decide_which_answers_are_valid():
    questions = parse_xlsform(kobo_form()).questions()
    base = {"q_env": ["4"], "q_years": ["12"], "q_need": ["a b"]}
    answers, errors = validate_answers(questions, base)
    assert errors == {} and "q_why" not in answers  # not relevant: not required
    _, errors = validate_answers(questions, {**base, "q_env": ["1"]})
    assert errors == {"q_why": "此题为必答题"}  # relevant now, and required
    answers, errors = validate_answers(questions, {**base, "q_env": ["4"], "q_why": ["太脏"]})
    assert errors == {} and "q_why" not in answers  # an answer to a question not shown is dropped
    _, errors = validate_answers(questions, {**base, "q_years": ["101"], "q_need": ["a b c"]})
    assert errors == {"q_years": "请填写 0–100 之间的整数", "q_need": "最多选两项"}
    answers, errors = validate_answers(questions, {**base, "q_env": ["dk"]})
    assert errors == {} and answers["q_env"].dont_know


def test_labels_without_a_chinese_column_use_the_default_language_then_the_first():
    spec = parse_xlsform(
        workbook(
            [
                ["type", "name", "label::English (en)", "label::Français (fr)"],
                ["text", "q", "Hello", "Bonjour"],
            ],
            None,
            [["form_title", "default_language"], ["T", "Français (fr)"]],
        )
    )
    assert spec.questions()[0].label == "Bonjour"
    spec = parse_xlsform(workbook([["type", "name", "label::English (en)"], ["text", "q", "Hello"]]))
    assert spec.questions()[0].label == "Hello"


def test_refusals_name_sheet_row_and_reason_in_chinese():
    # pyxform stops at the first structural error; each keeps its row, in Chinese.
    cases = [
        (
            [["type", "name", "label"], ["integer", "q", "Q"], ["select_one missing", "q1", "Q1"]],
            3,
            "选项列表“missing”在 choices 表中不存在",
        ),
        ([["type", "name", "label"], ["text", "q2", "Q2"], ["text", "q2", "again"]], 3, "题目名称“q2”重复"),
        ([["type", "name", "label"], ["integer", "2bad", "bad name"]], 2, "题目名称无效"),
        ([["type", "name", "label"], ["text", "q", "Q"], ["integr", "q3", "Q3"]], 3, "不支持的题型“integr”"),
        (
            [["type", "name", "label"], ["end_group", "", ""], ["text", "q", "Q"]],
            2,
            "end_group 没有对应的 begin_group",
        ),
        (
            [["type", "name", "label"], ["text", "q", "Q"], ["begin_group", "g", "G"]],
            3,
            "分组没有 end_group 结束",
        ),
        (
            [["type", "name", "label", "relevant"], ["text", "q", "Q", "${zz} = 1"]],
            2,
            "relevant 引用的题目“zz”不存在",
        ),
    ]
    for survey, line, message in cases:
        problems = rejected(
            workbook(survey, [["list_name", "name", "label"], ["yn", "y", "是"], ["yn", "n", "否"]])
        )
        assert len(problems) == 1, problems
        assert problems[0][0] == line and problems[0][1] == "survey 表" and message in problems[0][2], (
            problems
        )


def test_questions_the_online_form_cannot_ask_are_all_listed():
    data = workbook(
        [
            ["type", "name", "label"],
            ["begin_repeat", "r1", "家庭成员"],
            ["integer", "age", "年龄"],
            ["end_repeat", "", ""],
            ["geopoint", "where", "位置"],
            ["date", "when", "日期"],
            ["select_multiple sat", "q_m", "多选"],
            ["select_one one", "q_one", "单项"],
            ["text", "q_ok", "正常题"],
        ],
        [["list_name", "name", "label"], *SAT, ["sat", "dk", "不了解"], ["one", "a", "A"]],
    )
    problems = rejected(data)
    assert [(line, message) for line, _, message in problems] == [
        (2, "在线问卷不支持题型“重复组（begin_repeat）”，请删除此题或改为文本题"),
        (5, "在线问卷不支持题型“位置（geopoint）”，请删除此题或改为文本题"),
        (6, "在线问卷不支持题型“日期（date）”，请删除此题或改为文本题"),
        (7, "多选题不支持“不了解”选项"),
        (8, "选项列表“one”至少需要 2 个选项"),
    ]


def test_the_same_name_in_two_groups_is_refused_because_names_are_unique_per_survey():
    data = workbook(
        [
            ["type", "name", "label"],
            ["begin_group", "a", "A"],
            ["text", "q", "Q"],
            ["end_group", "", ""],
            ["begin_group", "b", "B"],
            ["text", "q", "Q again"],
            ["end_group", "", ""],
        ]
    )
    assert rejected(data) == [(6, "survey 表", "题目名称“q”重复（不同分组中也不能同名）")]


def test_nested_groups_become_sections_titled_outer_slash_inner_and_combine_relevance():
    spec = parse_xlsform(
        workbook(
            [
                ["type", "name", "label", "relevant"],
                ["select_one yn", "lives", "是否居住", ""],
                ["begin_group", "a", "服务", "${lives} = 'y'"],
                ["begin_group", "b", "养老", ""],
                ["text", "q", "建议", "string-length(${lives}) > 0"],
                ["end_group", "", "", ""],
                ["end_group", "", "", ""],
            ],
            [["list_name", "name", "label"], ["yn", "y", "是"], ["yn", "n", "否"]],
        )
    )
    assert [s.title for s in spec.sections] == ["", "服务 / 养老"]
    assert spec.questions()[1].relevant == "(${lives} = 'y') and (string-length(${lives}) > 0)"


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


def test_other_columns_of_questions_and_choices_are_kept_and_reported_under_the_sheet_names():
    spec = parse_xlsform(
        workbook(
            [
                ["type", "name", "label", "required", "required_message", "default"],
                ["select_one yn", "q", "Q", "yes", "必须回答", "y"],
            ],
            [
                ["list_name", "name", "label", "media::image", "filter"],
                ["yn", "y", "是", "y.png", "a"],
                ["yn", "n", "否", "", "b"],
            ],
        )
    )
    question = spec.questions()[0]
    assert question.extras == {
        "default": "y",
        "bind:jr:requiredMsg": "必须回答",
        "choices": {"y": {"media": {"image": "y.png"}, "filter": "a"}, "n": {"filter": "b"}},
    }
    assert [n.message for n in spec.notes] == [
        "列“default”在线问卷不使用，已保留在定义中（第 2 行）",
        "列“required_message”在线问卷不使用，已保留在定义中（第 2 行）",
        "choices 表的 filter、media 列在线问卷不使用，已保留在定义中（第 2 行的选项）",
    ]
