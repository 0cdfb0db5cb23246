"""Reading files: XLSForm definitions (all-or-nothing) and paper questionnaires (row by row).

XLSForm subset (https://xlsform.org) — sheet ``survey`` with columns ``type``, ``name``, ``label`` (or
``label::zh`` / ``label::Chinese``…), ``required``, ``hint``, and our own ``indicator`` and
``service_area``; sheet ``choices`` with ``list_name``, ``name``, ``label``; optional sheet ``settings``
(``form_title``). Types: ``select_one LIST``, ``select_multiple LIST``, ``integer``, ``decimal``,
``text``, ``note``, ``begin_group``/``end_group`` (one level: sections). A ``select_one`` whose list is
exactly the choices 1..5 in order (plus optionally ``dk`` or ``99`` for 不了解/不适用) is a 5-point Likert
item. Anything else — other types, other non-empty columns (relevant, constraint, calculation, …),
unknown lists — is refused with sheet, row and reason, every problem at once.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from core.csvio import (
    XLSFORM_LIMITS,
    ErrorLog,
    ImportRejected,
    RowError,
    cell_problems,
    open_workbook,
    read_rows,
    xlsx_rows,
)
from core.inputs import column_length
from surveys.definitions import (
    AGE_BANDS,
    DONT_KNOW_LABEL,
    GENDERS,
    NAME_PATTERN,
    AnswerValue,
    QuestionLike,
    QuestionSpec,
    SectionSpec,
    SurveySpec,
    validate_answers,
)
from surveys.models import QuestionKind, SurveyResponse

LABEL_COLUMNS = ("label::zh", "label::zh-cn", "label::chinese", "label::chinese (zh)", "label")
HINT_COLUMNS = ("hint::zh", "hint::zh-cn", "hint::chinese", "hint::chinese (zh)", "hint")
SURVEY_COLUMNS = frozenset(
    {"type", "name", "required", "indicator", "service_area", *LABEL_COLUMNS, *HINT_COLUMNS}
)
CHOICE_COLUMNS = frozenset({"list_name", "list name", "name", *LABEL_COLUMNS})
SIMPLE_TYPES = {
    "integer": QuestionKind.integer,
    "decimal": QuestionKind.number,
    "text": QuestionKind.text,
    "note": QuestionKind.note,
}
DK_NAMES = ("dk", "99")
TRUE_WORDS = frozenset({"yes", "true", "1", "true()", "是"})
FALSE_WORDS = frozenset({"", "no", "false", "0", "false()", "否"})
PAPER_FIXED = ("instance_id", "community", "age_band", "gender", "district")
PAPER_PREFIX = "paper-"  # stored instance ids of paper questionnaires
INSTANCE_MAX = (column_length(SurveyResponse.instance_id) or 100) - len(PAPER_PREFIX)


def _cell(value: Any) -> str:
    """A cell as text; integral floats lose their ".0" (Excel stores 3 as 3.0)."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _sheet_rows(workbook: Any, name: str) -> tuple[list[str], list[tuple[int, dict[str, str]]]] | None:
    """Header (lower-cased) and (row number, values) of a sheet, skipping blank rows; None when absent."""
    sheet = next((workbook[s] for s in workbook.sheetnames if s.strip().lower() == name), None)
    if sheet is None:
        return None
    limits = XLSFORM_LIMITS
    # max_col and the row cap: a stray cell in column XFD or row 1,048,576 made this take minutes.
    rows = sheet.iter_rows(values_only=True, max_col=limits.max_columns)
    header = [_cell(v).lower() for v in next(rows, ())]
    out = []
    for number, values in enumerate(rows, start=2):
        if number > limits.max_rows + 1:
            raise ImportRejected([RowError(number, f"工作表超过 {limits.max_rows} 行", f"{name} 表")])
        row = {header[i]: _cell(v) for i, v in enumerate(values) if i < len(header) and header[i]}
        if problems := cell_problems(number, row, limits):
            raise ImportRejected(problems)
        if any(row.values()):
            out.append((number, row))
    return header, out


def _first(row: Mapping[str, str], columns: Sequence[str]) -> str:
    return next((row[c] for c in columns if row.get(c)), "")


def _open_workbook(data: bytes) -> Any:
    # check_xlsx first (zip bomb, sheet count, rows and cells per sheet), then openpyxl read-only.
    return open_workbook(data, XLSFORM_LIMITS)


@dataclass
class _ChoiceList:
    choices: list[list[str]] = field(default_factory=list)
    dont_know_label: str | None = None


def _read_choices(workbook: Any, errors: list[RowError]) -> dict[str, _ChoiceList]:
    sheet = _sheet_rows(workbook, "choices")
    lists: dict[str, _ChoiceList] = {}
    if sheet is None:
        return lists
    header, rows = sheet
    for column in header:
        if column and column not in CHOICE_COLUMNS and not column.startswith(("label::", "media")):
            errors.append(RowError(1, f"不支持的列“{column}”", "choices 表"))
    for line, row in rows:
        list_name = row.get("list_name") or row.get("list name") or ""
        name, label = row.get("name", ""), _first(row, LABEL_COLUMNS)
        if not list_name or not name:
            errors.append(RowError(line, "选项缺少 list_name 或 name", "choices 表"))
            continue
        entry = lists.setdefault(list_name, _ChoiceList())
        if any(c == name for c, _ in entry.choices) or (name in DK_NAMES and entry.dont_know_label):
            errors.append(RowError(line, f"选项列表 {list_name} 中选项 {name} 重复", "choices 表"))
        elif name in DK_NAMES:
            entry.dont_know_label = label or DONT_KNOW_LABEL
        else:
            entry.choices.append([name, label or name])
    return lists


def _required(text: str) -> bool | None:
    lowered = text.strip().lower()
    if lowered in TRUE_WORDS:
        return True
    if lowered in FALSE_WORDS:
        return False
    return None


def parse_xlsform(data: bytes) -> SurveySpec:
    """Read an XLSForm workbook into a SurveySpec, or raise ImportRejected listing every problem."""
    workbook = _open_workbook(data)
    errors: list[RowError] = []
    survey = _sheet_rows(workbook, "survey")
    if survey is None:
        raise ImportRejected([RowError(1, "缺少 survey 工作表", "survey 表")])
    lists = _read_choices(workbook, errors)
    settings = _sheet_rows(workbook, "settings")
    title = _first(settings[1][0][1], ("form_title", "title")) if settings and settings[1] else ""
    header, rows = survey
    for column in ("type", "name"):
        if column not in header:
            errors.append(RowError(1, f"缺少列“{column}”", "survey 表"))
    for column in header:
        # relevant, constraint, calculation, choice_filter, repeat_count, … are not supported.
        if column and column not in SURVEY_COLUMNS and any(row.get(column) for _, row in rows):
            message = f"不支持的列“{column}”（本系统不支持跳转、校验表达式等）"
            errors.append(RowError(1, message, "survey 表"))
    sections: list[SectionSpec] = [SectionSpec("", "")]
    in_group = False
    names: set[str] = set()
    for line, row in rows:
        where = "survey 表"
        kind_text = re.sub(r"\s+", " ", row.get("type", "").strip())
        kind_word, _, list_name = kind_text.partition(" ")
        name, label = row.get("name", ""), _first(row, LABEL_COLUMNS)
        if kind_word in ("begin_group", "begin") and (kind_word == "begin_group" or list_name == "group"):
            if in_group:
                errors.append(RowError(line, "不支持嵌套分组", where))
            sections.append(SectionSpec(name, label or name))
            in_group = True
            continue
        if kind_word in ("end_group", "end") and (kind_word == "end_group" or list_name == "group"):
            if not in_group:
                errors.append(RowError(line, "end_group 没有对应的 begin_group", where))
            sections.append(SectionSpec("", ""))
            in_group = False
            continue
        required = _required(row.get("required", ""))
        if required is None:
            errors.append(RowError(line, f"required 只能是 yes 或 no，收到“{row.get('required')}”", where))
        if not NAME_PATTERN.match(name):
            errors.append(RowError(line, f"题目名称“{name}”无效（字母开头，仅字母、数字、下划线）", where))
        elif name in names:
            errors.append(RowError(line, f"题目名称“{name}”重复", where))
        names.add(name)
        spec = QuestionSpec(
            name=name,
            label=label or name,
            kind=QuestionKind.text,
            required=bool(required),
            hint=_first(row, HINT_COLUMNS),
            indicator_code=row.get("indicator", ""),
            service_area=row.get("service_area", ""),
        )
        if kind_word in ("select_one", "select_multiple"):
            if not list_name or " " in list_name:
                errors.append(RowError(line, f"题型“{kind_text}”缺少选项列表名", where))
                continue
            if list_name not in lists:
                errors.append(RowError(line, f"选项列表“{list_name}”在 choices 表中不存在", where))
                continue
            entry = lists[list_name]
            spec.choices = [list(c) for c in entry.choices]
            spec.dont_know = entry.dont_know_label is not None
            spec.dont_know_label = entry.dont_know_label or DONT_KNOW_LABEL
            is_likert = [c for c, _ in entry.choices] == ["1", "2", "3", "4", "5"]
            if kind_word == "select_multiple":
                spec.kind = QuestionKind.multiple
                if spec.dont_know:
                    errors.append(RowError(line, "多选题不支持“不了解”选项", where))
            else:
                spec.kind = QuestionKind.likert5 if is_likert else QuestionKind.single
            if len(spec.choices) < 2:
                errors.append(RowError(line, f"选项列表“{list_name}”至少需要 2 个选项", where))
        elif kind_text in SIMPLE_TYPES:
            spec.kind = SIMPLE_TYPES[kind_text]
            if spec.kind == QuestionKind.note:
                spec.required = False
        else:
            errors.append(RowError(line, f"不支持的题型“{kind_text or '（空）'}”", where))
            continue
        sections[-1].questions.append(spec)
    if in_group:
        errors.append(RowError(rows[-1][0] if rows else 1, "分组没有 end_group 结束", "survey 表"))
    if errors:
        raise ImportRejected(errors)
    kept = [s for s in sections if s.questions]
    if not kept:
        raise ImportRejected([RowError(1, "问卷中没有任何题目", "survey 表")])
    return SurveySpec(title=title, sections=kept)


# ------------------------------------------------------------------------------------------------ paper


@dataclass(frozen=True)
class PaperRow:
    """A valid paper questionnaire."""

    line: int
    instance_id: str
    community_code: str
    age_band: str
    gender: str
    district_code: str
    answers: dict[str, AnswerValue]


@dataclass
class PaperBatch:
    """Valid rows and rejected rows of one paper file."""

    rows: list[PaperRow] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)  # the first MAX_REPORTED problems
    total_errors: int = 0  # all of them


def paper_rows(
    data: bytes, filename: str, errors: ErrorLog | None = None
) -> Iterator[tuple[int, dict[str, str]]]:
    """(line, row) of an uploaded CSV or XLSX file, bounded (core.csvio.Limits); lines count the header
    as line 1. Rows with bad cells go to ``errors``."""
    if filename.lower().endswith((".xlsx", ".xlsm")) or data[:2] == b"PK":
        return xlsx_rows(data, errors=errors) or iter(())
    return read_rows(data, required=("instance_id", "community"), errors=errors)


def read_paper(
    rows: Iterable[tuple[int, dict[str, str]]],
    questions: Sequence[QuestionLike],
    community_codes: Mapping[str, str],
    error_log: ErrorLog | None = None,
) -> PaperBatch:
    """Validate each paper row; ``community_codes`` maps a community code to its district code.
    Problems go to ``error_log`` (give the log ``paper_rows`` writes to, so both share one cap)."""
    log = error_log if error_log is not None else ErrorLog()
    batch = PaperBatch()
    seen: dict[str, int] = {}
    genders = {**{code: code for code, _ in GENDERS}, **{label: code for code, label in GENDERS}}
    ages = {code for code, _ in AGE_BANDS}
    for line, row in rows:
        instance = row.get("instance_id", "").strip()
        community = row.get("community", "").strip()
        problems: list[tuple[str | None, str]] = []
        if not instance:
            problems.append(("instance_id", "缺少问卷编号"))
        elif len(instance) > INSTANCE_MAX:
            problems.append(("instance_id", f"问卷编号过长（最多 {INSTANCE_MAX} 字符）"))
        elif instance in seen:
            problems.append(("instance_id", f"问卷编号与第 {seen[instance]} 行重复"))
        district = row.get("district", "").strip()
        if community not in community_codes:
            problems.append(("community", f"社区代码“{community[:40]}”不存在"))
        elif district and district != community_codes[community]:
            problems.append(("district", f"社区“{community}”不属于区“{district[:40]}”"))
        gender = genders.get(row.get("gender", "")) if row.get("gender") else ""
        if gender is None:
            problems.append(("gender", "性别只能填 男/女 或 male/female"))
        age = row.get("age_band", "")
        if age and age not in ages:
            problems.append(("age_band", "年龄段只能填 " + "、".join(sorted(ages))))
        answers, errors = validate_answers(questions, {q.name: [row.get(q.name, "")] for q in questions})
        problems.extend(errors.items())
        if problems:
            log.extend(RowError(line, message, column) for column, message in problems)
            continue
        seen[instance] = line
        district = district or community_codes[community]
        batch.rows.append(PaperRow(line, instance, community, age, gender or "", district, answers))
    batch.errors, batch.total_errors = log.errors, log.total
    return batch
