"""Shared builders of XLSForm workbooks (in memory, with openpyxl) for the unit and web tests."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

from openpyxl import Workbook

Rows = Sequence[Sequence[Any]]


def xlsform_workbook(survey: Rows, choices: Rows | None = None, settings: Rows | None = None) -> bytes:
    """An .xlsx with sheets survey, choices and settings (each only when given) as bytes."""
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "survey"
    for row in survey:
        sheet.append(list(row))
    for title, rows in (("choices", choices), ("settings", settings)):
        if rows is not None:
            extra = book.create_sheet(title)
            for row in rows:
                extra.append(list(row))
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


SATISFACTION = ["很不满意", "不太满意", "一般", "比较满意", "很满意"]
SATISFACTION_EN = ["Very dissatisfied", "Dissatisfied", "Neutral", "Satisfied", "Very satisfied"]

# A form as KoboToolbox exports it: two label languages, metadata rows, a group with appearance,
# relevant, constraint with messages, calculate, a note. Row numbers are in the comments.
KOBO_SURVEY: list[list[str]] = [
    # 1
    [
        "type",
        "name",
        "label::中文 (zh)",
        "label::English (en)",
        "hint::中文 (zh)",
        "hint::English (en)",
        "required",
        "relevant",
        "constraint",
        "constraint_message::中文 (zh)",
        "constraint_message::English (en)",
        "calculation",
        "appearance",
        "indicator",
    ],
    ["start", "start", "", "", "", "", "", "", "", "", "", "", "", ""],  # 2
    ["end", "end", "", "", "", "", "", "", "", "", "", "", "", ""],  # 3
    ["today", "today", "", "", "", "", "", "", "", "", "", "", "", ""],  # 4
    ["deviceid", "deviceid", "", "", "", "", "", "", "", "", "", "", "", ""],  # 5
    ["username", "username", "", "", "", "", "", "", "", "", "", "", "", ""],  # 6
    ["note", "intro", "欢迎参加满意度调查", "Welcome", "", "", "", "", "", "", "", "", "", ""],  # 7
    [
        "begin_group",
        "g_env",
        "社区环境",
        "Environment",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        "field-list",
        "",
    ],  # 8
    [
        "select_one sat",
        "q_env",
        "环境卫生",
        "Sanitation",
        "近三个月",
        "Last 3 months",
        "yes",
        "",
        "",
        "",
        "",
        "",
        "",
        "GG-01",
    ],  # 9
    [
        "text",
        "q_why",
        "不满意的原因",
        "Why not",
        "",
        "",
        "yes",
        "${q_env} = '1' or ${q_env} = '2'",
        "",
        "",
        "",
        "",
        "multiline",
        "",
    ],  # 10
    ["end_group", "", "", "", "", "", "", "", "", "", "", "", "", ""],  # 11
    [
        "integer",
        "q_years",
        "居住年数",
        "Years lived here",
        "",
        "",
        "",
        "",
        ". >= 0 and . <= 100",
        "请填写 0–100 之间的整数",
        "Between 0 and 100",
        "",
        "",
        "",
    ],  # 12
    [
        "select_multiple need",
        "q_need",
        "最需要的服务",
        "Services needed",
        "",
        "",
        "",
        "",
        "count-selected(.) <= 2",
        "最多选两项",
        "At most two",
        "",
        "",
        "",
    ],  # 13
    ["calculate", "years_x2", "", "", "", "", "", "", "", "", "", "${q_years} * 2", "", ""],  # 14
    ["text", "q_later", "其他建议", "Other", "", "", "", "${years_x2} > 10", "", "", "", "", "", ""],  # 15
]
KOBO_CHOICES: list[list[str]] = [
    ["list_name", "name", "label::中文 (zh)", "label::English (en)"],
    *[
        ["sat", str(i), zh, en]
        for i, (zh, en) in enumerate(zip(SATISFACTION, SATISFACTION_EN, strict=True), 1)
    ],
    ["sat", "dk", "不了解", "Don't know"],
    ["need", "a", "养老", "Elderly care"],
    ["need", "b", "托育", "Childcare"],
    ["need", "c", "停车", "Parking"],
]
KOBO_SETTINGS: list[list[str]] = [
    ["form_title", "form_id", "version", "default_language"],
    ["2026 年三季度社区满意度", "sat_2026q3", "1", "中文 (zh)"],
]


def kobo_form() -> bytes:
    """The Kobo-style form above as an .xlsx."""
    return xlsform_workbook(KOBO_SURVEY, KOBO_CHOICES, KOBO_SETTINGS)
