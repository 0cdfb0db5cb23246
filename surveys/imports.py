"""Reading files: XLSForm definitions (all-or-nothing, parsed by pyxform) and paper questionnaires.

XLSForm (https://xlsform.org) as ODK and KoboToolbox users write it is read by pyxform, the reference
implementation, and its result is mapped to what the online form can ask:
- types ``select_one``/``select_multiple``/``integer``/``decimal``/``text``/``note`` and groups (nested
  groups become one section each, titled "outer / inner"); a ``select_one`` whose list is exactly the
  choices 1..5 in order (plus optionally ``dk`` or ``99`` for 不了解/不适用) is a 5-point Likert item;
- labels and hints in several languages (``label::中文 (zh)``, ``label::English (en)``…): the Chinese one
  is shown, the others are kept with the question;
- ``relevant`` (a group's is combined with its questions') and ``constraint``/``constraint_message`` in
  the subset of :mod:`surveys.expressions` are stored and enforced on every submission; an expression
  outside the subset, ``calculate`` rows and every other column (appearance, default, choice_filter…)
  are kept with the definition and reported as warnings; metadata rows (start, end, today, deviceid,
  username…) are accepted and ignored with a note; our own columns ``indicator`` and ``service_area``.
A form pyxform refuses, and questions the online form cannot ask (repeats, geopoint, photo, date…), are
refused with sheet, row and reason in Chinese; nothing is stored.
"""

from __future__ import annotations

import copy
import io
import re
import zipfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pyxform.builder import create_survey_element_from_dict
from pyxform.errors import PyXFormError
from pyxform.xls2json import workbook_to_json
from pyxform.xls2json_backends import get_xlsform

from core.csvio import (
    XLSFORM_LIMITS,
    ErrorLog,
    ImportRejected,
    RowError,
    open_workbook,
    read_rows,
    xlsx_rows,
)
from core.i18n import N_
from core.inputs import column_length
from surveys import expressions
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

SIMPLE_TYPES = {
    "integer": QuestionKind.integer,
    "decimal": QuestionKind.number,
    "text": QuestionKind.text,
    "note": QuestionKind.note,
}
SELECT_TYPES = {"select one": QuestionKind.single, "select all that apply": QuestionKind.multiple}
METADATA_TYPES = frozenset(
    {
        "start",
        "end",
        "today",
        "deviceid",
        "imei",
        "username",
        "email",
        "phonenumber",
        "subscriberid",
        "simserial",
        "audit",
        "start-geopoint",
        "background-audio",
        "uri:deviceid",
        "uri:username",
        "uri:email",
        "uri:phonenumber",
        "uri:subscriberid",
        "uri:simserial",
    }
)
TYPE_LABELS = {
    "repeat": N_("重复组（begin_repeat）"),
    "geopoint": N_("位置（geopoint）"),
    "geotrace": N_("轨迹（geotrace）"),
    "geoshape": N_("区域（geoshape）"),
    "photo": N_("图片（image）"),
    "audio": N_("录音（audio）"),
    "video": N_("视频（video）"),
    "date": N_("日期（date）"),
    "time": N_("时间（time）"),
    "dateTime": N_("日期时间（dateTime）"),
    "barcode": N_("条码（barcode）"),
    "range": N_("滑块（range）"),
}
# Keys of pyxform's question dict that the online form uses; anything else is kept as an extra.
USED_KEYS = frozenset(
    {"type", "name", "label", "hint", "bind", "choices", "itemset", "list_name", "indicator", "service_area"}
)
USED_BIND = frozenset({"required", "relevant", "constraint", "jr:constraintMsg"})
# pyxform's internal names of columns → the names users write in the sheet.
XLSFORM_NAMES = {
    "jr:requiredMsg": "required_message",
    "calculate": "calculation",
    "readonly": "read_only",
    "jr:choice_filter": "choice_filter",
    "itemset": "choice_filter",
}
DK_NAMES = ("dk", "99")
TRUE_WORDS = frozenset({"yes", "true", "true()", "1", "是"})
FALSE_WORDS = frozenset({"", "no", "false", "false()", "0", "否"})
PAPER_FIXED = ("instance_id", "community", "age_band", "gender", "district")
SURVEY_SHEET, CHOICES_SHEET = "survey 表", "choices 表"
CHINESE = re.compile(r"(^|[\s(（])(zh([-_][a-z]+)?)([)）]|$)|中文|汉语|简体|chinese", re.IGNORECASE)
PAPER_PREFIX = "paper-"  # stored instance ids of paper questionnaires
INSTANCE_MAX = (column_length(SurveyResponse.instance_id) or 100) - len(PAPER_PREFIX)


def _cell(value: Any) -> str:
    """A cell as text; integral floats lose their ".0" (Excel stores 3 as 3.0)."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


# ------------------------------------------------------------------------------------------------ XLSForm

# pyxform's messages (English) → Chinese; the row number pyxform gives is kept.
_PYXFORM_MESSAGES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"List name not in choices sheet: (\S+)"), "选项列表“{0}”在 choices 表中不存在"),
    (re.compile(r"the 'name' value '([^']*)' is invalid\. Questions, groups"), "题目名称“{0}”重复"),
    (
        re.compile(r"the 'name' value is invalid\. Names must begin"),
        "题目名称无效（须以字母或下划线开头，仅字母、数字、下划线、连字符、点）",
    ),
    (re.compile(r"Unknown question type '([^']*)'"), "不支持的题型“{0}”"),
    (re.compile(r"Unmatched 'begin_(group|repeat)'"), "分组没有 end_group 结束"),
    (re.compile(r"Unmatched 'end_(group|repeat)'"), "end_group 没有对应的 begin_group"),
    (
        re.compile(r"'(\w+)' value is invalid\. Reference variables .* name '([^']*)'"),
        "{0} 引用的题目“{1}”不存在",
    ),
    (re.compile(r"You must have a sheet named 'survey'"), "缺少 survey 工作表"),
    (re.compile(r"Missing calculation"), "calculate 行缺少 calculation 列的公式"),
    (re.compile(r"Duplicate column header: (.+)"), "列名“{0}”重复"),
    (re.compile(r"[Tt]here should be a choices sheet"), "缺少 choices 工作表"),
    (
        re.compile(r"[Ll]ist name (\S+) has duplicate|duplicate.*choice.*'([^']*)'", re.I),
        "选项列表中有重复的选项",
    ),
]
END_ROW = re.compile(r"end[ _](group|repeat)$", re.IGNORECASE)
MISSING_LANGUAGE = re.compile(r"Language '([^']*)' is missing the (\w+) (\w+) column")
_ROW = re.compile(r"\[row : (\d+)\]\s*")


def _pyxform_error(exc: Exception, rows: Sequence[Mapping[str, str]]) -> RowError:
    """One Chinese RowError for a pyxform refusal, with the row pyxform names (or finds)."""
    text = str(exc)
    found = _ROW.search(text)
    line = int(found.group(1)) if found else 1
    text = _ROW.sub("", text).strip()
    sheet = CHOICES_SHEET if "choices" in text and "List name not in" not in text else SURVEY_SHEET
    for pattern, template in _PYXFORM_MESSAGES:
        match = pattern.search(text)
        if match:
            message = template.format(*(g or "" for g in match.groups()))
            if not found and "Unknown question type" in text:
                bad = match.group(1)
                line = next((i + 2 for i, r in enumerate(rows) if r.get("type", "").strip() == bad), 1)
            return RowError(line, message, sheet)
    return RowError(line, f"XLSForm 格式错误：{text}", sheet)


def _pick(texts: Any, default_language: str) -> tuple[str, dict[str, str]]:
    """The Chinese text of a label or hint (or the default language, or the first) and all languages."""
    if not texts:
        return "", {}
    if isinstance(texts, str):
        return texts, {}
    languages = {str(k): str(v) for k, v in texts.items() if v}
    chinese = [k for k in languages if CHINESE.search(k)]
    for key in (*chinese, default_language, "default", *languages):
        if key in languages:
            return languages[key], languages
    return "", languages


def _truth(text: Any) -> bool | None:
    lowered = str(text or "").strip().lower()
    if lowered in TRUE_WORDS:
        return True
    if lowered in FALSE_WORDS:
        return False
    return None


@dataclass
class _Walk:
    """State of one pass over pyxform's tree."""

    rows: dict[str, list[int]]
    language: str
    sections: list[SectionSpec] = field(default_factory=lambda: [SectionSpec("", "")])
    errors: list[RowError] = field(default_factory=list)
    notes: list[RowError] = field(default_factory=list)
    names: set[str] = field(default_factory=set)
    calculations: list[dict[str, Any]] = field(default_factory=list)
    metadata: list[str] = field(default_factory=list)
    unused: dict[str, list[int]] = field(default_factory=dict)

    seen: dict[str, int] = field(default_factory=dict)
    lines: dict[int, int] = field(default_factory=dict)

    def take(self, name: str) -> int:
        """The row of the next element called ``name`` (pyxform's tree keeps the sheet's order)."""
        rows, used = self.rows.get(name, []), self.seen.get(name, 0)
        self.seen[name] = used + 1
        return rows[used] if used < len(rows) else (rows[-1] if rows else 1)


def _and(*parts: str) -> str:
    kept = [p.strip() for p in parts if p and p.strip()]
    return kept[0] if len(kept) == 1 else " and ".join(f"({p})" for p in kept)


def _question(walk: _Walk, item: Mapping[str, Any], relevant: str, line: int) -> QuestionSpec | None:
    kind_text, name = str(item.get("type", "")), str(item.get("name", ""))
    label, labels = _pick(item.get("label"), walk.language)
    hint, hints = _pick(item.get("hint"), walk.language)
    bind = dict(item.get("bind") or {})
    if kind_text in SELECT_TYPES:
        kind = SELECT_TYPES[kind_text]
    elif kind_text in SIMPLE_TYPES:
        kind = SIMPLE_TYPES[kind_text]
    else:
        shown = TYPE_LABELS.get(kind_text, kind_text)
        walk.errors.append(
            RowError(line, f"在线问卷不支持题型“{shown}”，请删除此题或改为文本题", SURVEY_SHEET)
        )
        return None
    if not NAME_PATTERN.match(name):
        walk.errors.append(
            RowError(line, f"题目名称“{name}”无效（字母开头，仅字母、数字、下划线）", SURVEY_SHEET)
        )
    elif name in walk.names:
        walk.errors.append(RowError(line, f"题目名称“{name}”重复（不同分组中也不能同名）", SURVEY_SHEET))
    walk.names.add(name)
    required = _truth(bind.get("required"))
    extras = {
        k: v for k, v in item.items() if k not in USED_KEYS | {"control"} and v not in ({}, [], "", None)
    }
    extras.update({k: v for k, v in dict(item.get("control") or {}).items() if v not in ("", None)})
    extras.update({f"bind:{k}": v for k, v in bind.items() if k not in USED_BIND})
    if required is None:
        extras["bind:required"] = bind.get("required")
        walk.notes.append(
            RowError(line, "required 为表达式，在线问卷按非必答处理（已保留原值）", SURVEY_SHEET)
        )
    message, messages = _pick(bind.get("jr:constraintMsg"), walk.language)
    spec = QuestionSpec(
        name=name,
        label=label or name,
        kind=kind,
        required=bool(required) and kind != QuestionKind.note,
        hint=hint,
        indicator_code=str(item.get("indicator", "")),
        service_area=str(item.get("service_area", "")),
        relevant=_and(relevant, str(bind.get("relevant", ""))),
        constraint=str(bind.get("constraint", "")).strip(),
        constraint_message=message,
    )
    translations: dict[str, Any] = {k: v for k, v in (("label", labels), ("hint", hints)) if v}
    if messages:
        translations["constraint_message"] = messages
    for column in extras:
        walk.unused.setdefault(column, []).append(line)
    spec.translations, spec.extras = translations, extras
    if kind in (QuestionKind.single, QuestionKind.multiple):
        _choices(walk, item, spec, translations, line)
    return spec


def _choices(
    walk: _Walk, item: Mapping[str, Any], spec: QuestionSpec, translations: dict[str, Any], line: int
) -> None:
    choices, dont_know, labels, kept = [], None, {}, {}
    for choice in item.get("choices") or []:
        code = str(choice.get("name", ""))
        text, languages = _pick(choice.get("label"), walk.language)
        other = {k: v for k, v in choice.items() if k not in ("name", "label") and v not in ("", None, {})}
        if other:
            kept[code] = other
        if languages:
            labels[code] = languages
        if code in DK_NAMES and dont_know is None:
            dont_know = text or DONT_KNOW_LABEL
        else:
            choices.append([code, text or code])
    if labels:
        translations["choices"] = labels
    if kept:
        spec.extras["choices"] = kept
        columns = "、".join(sorted({k for v in kept.values() for k in v}))
        walk.unused.setdefault(f"choices 表的 {columns}", []).append(line)
    spec.choices = choices
    spec.dont_know = dont_know is not None
    spec.dont_know_label = dont_know or DONT_KNOW_LABEL
    list_name = str(item.get("list_name", ""))
    if spec.kind == QuestionKind.multiple:
        if spec.dont_know:
            walk.errors.append(RowError(line, "多选题不支持“不了解”选项", SURVEY_SHEET))
    elif [c for c, _ in choices] == ["1", "2", "3", "4", "5"]:
        spec.kind = QuestionKind.likert5
    if len(choices) < 2:
        walk.errors.append(RowError(line, f"选项列表“{list_name}”至少需要 2 个选项", SURVEY_SHEET))


def _walk(walk: _Walk, children: Iterable[Mapping[str, Any]], titles: tuple[str, ...], relevant: str) -> None:
    for item in children:
        kind, name = str(item.get("type", "")), str(item.get("name", ""))
        line = walk.take(name)
        if kind == "group":
            if name == "meta" and (item.get("control") or {}).get("bodyless"):
                continue  # pyxform's own instanceID block
            title, _languages = _pick(item.get("label"), walk.language)
            inner = (*titles, title or name)
            group_relevant = _and(relevant, str((item.get("bind") or {}).get("relevant", "")))
            walk.sections.append(SectionSpec(name, " / ".join(inner)))
            _walk(walk, item.get("children") or [], inner, group_relevant)
            walk.sections.append(SectionSpec("", " / ".join(titles)))
        elif kind in METADATA_TYPES:
            walk.metadata.append(name)
            walk.notes.append(RowError(line, f"元数据字段 {kind} 已接受，在线问卷不采集", SURVEY_SHEET))
        elif kind == "calculate":
            calculation = str((item.get("bind") or {}).get("calculate", ""))
            walk.calculations.append({"name": name, "calculation": calculation, "row": line})
            walk.notes.append(
                RowError(line, f"计算字段 {name}（calculate）已保留，在线问卷不计算", SURVEY_SHEET)
            )
        else:
            spec = _question(walk, item, relevant, line)
            if spec is not None:
                walk.lines[id(spec)] = line
                walk.sections[-1].questions.append(spec)


def _check_expressions(walk: _Walk, questions: Sequence[QuestionSpec]) -> None:
    """Keep expressions in the supported subset; move the others to extras with a warning."""
    names = {q.name for q in questions}
    for q in questions:
        for column in ("relevant", "constraint"):
            text = getattr(q, column)
            if not text:
                continue
            reason = expressions.check_all([text], names)[0]
            if reason:
                q.extras[column] = text
                setattr(q, column, "")
                if column == "constraint":
                    q.constraint_message = ""
                walk.notes.append(
                    RowError(
                        walk.lines.get(id(q), 1),
                        f"{column} 表达式“{text}”{reason}，在线问卷不执行（已保留原式）",
                        SURVEY_SHEET,
                    )
                )


def _check_cells(data: bytes) -> None:
    """Bounds before pyxform reads the file: the zip (bombs, sheets, rows and cells, by
    :func:`core.csvio.open_workbook`), then every cell of every sheet (control characters, length):
    one streamed read-only pass, all problems at once."""
    workbook = open_workbook(data, XLSFORM_LIMITS)
    for name in workbook.sheetnames:
        for _row in xlsx_rows(workbook, name, limits=XLSFORM_LIMITS) or ():
            pass  # xlsx_rows rejects the file once the sheet is read if any cell was bad


def _read_definition(data: bytes) -> Any:
    if data[:2] == b"PK":
        file_type = ".xlsx"
    elif data[:8] == bytes.fromhex("d0cf11e0a1b11ae1"):
        file_type = ".xls"
    else:
        raise ImportRejected([RowError(1, "无法读取文件，请上传 .xlsx 格式的 Excel 文件")])
    if file_type == ".xlsx":
        _check_cells(data)
    try:
        return get_xlsform(io.BytesIO(data), file_type=file_type)
    except (PyXFormError, zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
        raise ImportRejected([RowError(1, "无法读取文件，请上传 .xlsx 格式的 Excel 文件")]) from exc


def parse_xlsform(data: bytes) -> SurveySpec:
    """Read an XLSForm workbook into a SurveySpec (with notes), or raise ImportRejected with every problem."""
    definition = _read_definition(data)
    rows: list[Mapping[str, str]] = list(definition.survey or [])
    if not rows and not definition.survey_header:
        raise ImportRejected([RowError(1, "缺少 survey 工作表", SURVEY_SHEET)])
    header = {str(k).strip().lower() for k in ((definition.survey_header or [{}])[0] or {})}
    missing = [c for c in ("type", "name") if c not in header]
    if missing:
        raise ImportRejected([RowError(1, f"缺少列“{c}”", SURVEY_SHEET) for c in missing])
    warnings: list[str] = []
    try:
        form = workbook_to_json(copy.deepcopy(definition), warnings=warnings)
        create_survey_element_from_dict(form).to_xml(validate=False, warnings=warnings)
    except PyXFormError as exc:
        raise ImportRejected([_pyxform_error(exc, rows)]) from exc
    line_of: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        name = str(row.get("name", "")).strip()
        if name and not END_ROW.match(str(row.get("type", "")).strip()):
            line_of.setdefault(name, []).append(i + 2)
    settings = dict((definition.settings or [{}])[0])
    walk = _Walk(line_of, str(form.get("default_language") or "default"))
    _walk(walk, form.get("children") or [], (), "")
    sections = [s for s in walk.sections if s.questions]
    questions = [q for s in sections for q in s.questions]
    _check_expressions(walk, questions)
    if not walk.errors and not questions:
        walk.errors.append(RowError(1, "问卷中没有任何题目", SURVEY_SHEET))
    if walk.errors:
        raise ImportRejected(sorted(walk.errors, key=lambda e: e.line))
    for column, lines in walk.unused.items():
        shown = "、".join(str(n) for n in lines[:10]) + ("…" if len(lines) > 10 else "")
        name = column.removeprefix("bind:")
        name = XLSFORM_NAMES.get(name, name)
        message = (
            f"{name} 列在线问卷不使用，已保留在定义中（第 {shown} 行的选项）"
            if name.startswith("choices 表")
            else f"列“{name}”在线问卷不使用，已保留在定义中（第 {shown} 行）"
        )
        walk.notes.append(RowError(lines[0], message, SURVEY_SHEET))
    for text in warnings:
        found, language = _ROW.search(text), MISSING_LANGUAGE.search(text)
        message = (
            f"语言“{language.group(1)}”缺少 {language.group(2)} 表的 {language.group(3)} 列（显示中文即可，不影响导入）"
            if language
            else "pyxform 提示：" + _ROW.sub("", text)
        )
        walk.notes.append(RowError(int(found.group(1)) if found else 1, message))
    title = str(settings.get("form_title") or settings.get("title") or "")
    extras = {"calculate": walk.calculations, "metadata": walk.metadata, "settings": settings}
    notes = sorted(walk.notes, key=lambda e: e.line)
    return SurveySpec(title=title, sections=sections, notes=notes, extras=extras)


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
