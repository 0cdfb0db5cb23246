"""Pure survey definition logic: specs of a questionnaire and server-side validation of answers.

Answer encoding (shared by the online form and paper files):
- likert5: "1".."5" (1 = 很不满意 … 5 = 很满意); 不了解/不适用 is ``dk`` (or 99, 不了解, 不适用);
- single: one choice code; multiple: choice codes separated by spaces or commas (XLSForm style);
- number/integer: a number; text: free text (at most 2,000 characters); note: never answered.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from core.csvio import RowError
from core.i18n import N_, DomainError
from surveys import expressions
from surveys.models import QuestionKind

LIKERT_LABELS = ("很不满意", "不太满意", "一般", "比较满意", "很满意")
DONT_KNOW_LABEL = "不了解/不适用"
DONT_KNOW_CODES = frozenset({"dk", "99", "不了解", "不适用", DONT_KNOW_LABEL})
AGE_BANDS = (("18-29", "18–29 岁"), ("30-44", "30–44 岁"), ("45-59", "45–59 岁"), ("60+", "60 岁及以上"))
GENDERS = (("male", "男"), ("female", "女"))
NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,79}$")
MAX_TEXT = 2000


class SurveyError(DomainError):
    """A refused survey operation (zh-CN message, machine ``code``)."""


class QuestionLike(Protocol):
    """What validation needs of a question: a model row or a spec."""

    name: str
    label: str
    kind: QuestionKind
    required: bool
    choices: list[list[str]]
    dont_know: bool
    relevant: str
    constraint: str
    constraint_message: str


@dataclass
class QuestionSpec:
    """A question before it is stored."""

    name: str
    label: str
    kind: QuestionKind
    required: bool = False
    hint: str = ""
    choices: list[list[str]] = field(default_factory=list)
    dont_know: bool = False
    dont_know_label: str = DONT_KNOW_LABEL
    indicator_code: str = ""
    service_area: str = ""
    # XLSForm expressions in the supported subset (surveys.expressions), checked on every submission.
    relevant: str = ""
    constraint: str = ""
    constraint_message: str = ""
    # Other languages' labels and hints ({"label": {lang: text}, "hint": …, "choices": {code: {lang: text}}})
    # and the XLSForm columns the online form does not use ({column: value}), kept with the definition.
    translations: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass
class SectionSpec:
    """A titled group of questions."""

    name: str
    title: str
    questions: list[QuestionSpec] = field(default_factory=list)


@dataclass
class SurveySpec:
    """A whole questionnaire: title and sections (questions outside any group go to an untitled section)."""

    title: str
    sections: list[SectionSpec] = field(default_factory=list)
    # Import notes and warnings (metadata ignored, calculate kept, columns kept but unused), by row.
    notes: list[RowError] = field(default_factory=list)
    # Rows of the form the online questionnaire does not use, kept: calculate, metadata, settings.
    extras: dict[str, Any] = field(default_factory=dict)

    def questions(self) -> list[QuestionSpec]:
        """Every question in order."""
        return [q for s in self.sections for q in s.questions]


@dataclass(frozen=True)
class AnswerValue:
    """A validated answer ready to store."""

    value_num: float | None = None
    value_text: str | None = None
    dont_know: bool = False


def likert_choices(labels: Sequence[str] = LIKERT_LABELS) -> list[list[str]]:
    """The five ordered choices "1".."5" with their labels."""
    if len(labels) != 5:
        raise SurveyError("bad_likert", N_("五级量表需要恰好 5 个选项标签"), "choices")
    return [[str(i + 1), label] for i, label in enumerate(labels)]


def parse_choices(text: str) -> list[list[str]]:
    """Editor input "code=label" per line (or "label" alone, numbered 1, 2, …) → [[code, label], ...]."""
    choices: list[list[str]] = []
    for i, line in enumerate(line.strip() for line in text.splitlines() if line.strip()):
        code, sep, label = line.partition("=")
        choices.append([code.strip(), label.strip()] if sep else [str(i + 1), line])
    codes = [c for c, _ in choices]
    if len(set(codes)) != len(codes):
        raise SurveyError("duplicate_choice", N_("选项代码不能重复"), "choices")
    if any(not c or " " in c or "," in c for c in codes):
        raise SurveyError("bad_choice", N_("选项代码不能为空，也不能含空格或逗号"), "choices")
    return choices


def check_question(spec: QuestionSpec, taken: set[str]) -> None:
    """Refuse a question with a bad or duplicate name or without the choices its kind needs."""
    if not NAME_PATTERN.match(spec.name):
        raise SurveyError("bad_name", N_("题目代码只能用字母、数字和下划线，且以字母开头"), "name")
    if spec.name in taken:
        raise SurveyError("duplicate_name", N_("题目代码已存在"), "name")
    if not spec.label.strip():
        raise SurveyError("label_required", N_("请填写题目文字"), "label")
    if spec.kind in (QuestionKind.single, QuestionKind.multiple) and len(spec.choices) < 2:
        raise SurveyError("choices_required", N_("选择题至少需要 2 个选项"), "choices")
    if spec.kind == QuestionKind.likert5 and [c for c, _ in spec.choices] != ["1", "2", "3", "4", "5"]:
        raise SurveyError("bad_likert", N_("五级量表的选项代码必须是 1 到 5"), "choices")


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def validate_answer(question: QuestionLike, raw: Sequence[str]) -> AnswerValue | str | None:
    """One answer: an AnswerValue, None when unanswered, or a zh-CN error message."""
    values = [v.strip() for v in raw if v is not None and v.strip()]
    kind = QuestionKind(question.kind)
    if kind == QuestionKind.note:
        return None
    if kind == QuestionKind.multiple and len(values) == 1:
        values = [v for v in re.split(r"[\s,，]+", values[0]) if v]
    if not values:
        return N_("此题为必答题") if question.required else None
    codes = {c for c, _ in question.choices}
    if question.dont_know and len(values) == 1 and values[0].lower() in DONT_KNOW_CODES:
        return AnswerValue(dont_know=True)
    if kind == QuestionKind.multiple:
        unknown = [v for v in values if v not in codes]
        if unknown:
            return N_("选项不存在：") + "、".join(unknown)
        return AnswerValue(value_text=" ".join(dict.fromkeys(values)))
    if len(values) > 1:
        return N_("此题只能选择一个答案")
    value = values[0]
    if kind in (QuestionKind.likert5, QuestionKind.single):
        if value not in codes:
            return N_("选项不存在：") + value
        return (
            AnswerValue(value_num=float(value), value_text=value)
            if kind == QuestionKind.likert5
            else (AnswerValue(value_text=value))
        )
    if kind in (QuestionKind.number, QuestionKind.integer):
        number = _number(value)
        if number is None:
            return N_("请填写数字")
        if kind == QuestionKind.integer and number != int(number):
            return N_("请填写整数")
        return AnswerValue(value_num=number)
    if len(value) > MAX_TEXT:
        return N_("内容过长（最多 2000 字）")
    return AnswerValue(value_text=value)


def answer_value(question: QuestionLike, answer: AnswerValue | None) -> expressions.Value:
    """The value an expression sees for an answer: a number, the code(s) or text, "" when unanswered."""
    if answer is None:
        return ""
    if answer.dont_know:
        return "dk"
    if QuestionKind(question.kind) in (QuestionKind.number, QuestionKind.integer):
        return answer.value_num if answer.value_num is not None else ""
    return answer.value_text or ""


def _holds(text: str, values: Mapping[str, expressions.Value], current: expressions.Value = "") -> bool:
    """Evaluate a stored expression; one that cannot be evaluated is not enforced (it was checked at import)."""
    try:
        return expressions.truthy(text, values, current)
    except (expressions.Unsupported, re.error, ValueError, OverflowError):
        return True


def validate_answers(
    questions: Sequence[QuestionLike], raw: Mapping[str, Sequence[str]]
) -> tuple[dict[str, AnswerValue], dict[str, str]]:
    """All answers of one questionnaire: (valid answers by question name, errors by question name).

    Questions are taken in order: a question whose ``relevant`` is false is skipped (its answer dropped,
    never required, seen as unanswered by later expressions, as in ODK); a given answer must satisfy the
    question's ``constraint`` (``.`` is the answer) or gets its constraint message.
    """
    answers: dict[str, AnswerValue] = {}
    errors: dict[str, str] = {}
    first: dict[str, AnswerValue] = {}
    for question in questions:
        result = validate_answer(question, raw.get(question.name, ()))
        if isinstance(result, AnswerValue):
            first[question.name] = result
    values = {q.name: answer_value(q, first.get(q.name)) for q in questions}
    for question in questions:
        relevant = getattr(question, "relevant", "") or ""
        if relevant and not _holds(relevant, values):
            values[question.name] = ""
            continue
        result = validate_answer(question, raw.get(question.name, ()))
        if isinstance(result, str):
            errors[question.name] = result
        elif result is not None:
            constraint = getattr(question, "constraint", "") or ""
            current = answer_value(question, result)
            if constraint and not result.dont_know and not _holds(constraint, values, current):
                message = getattr(question, "constraint_message", "") or ""
                errors[question.name] = message or N_("答案不符合本题的填写要求")
                continue
            answers[question.name] = result
    return answers, errors


def validate_respondent(age_band: str, gender: str) -> dict[str, str]:
    """Errors of the weighting fields (both optional, but must be a listed value when given)."""
    errors: dict[str, str] = {}
    if age_band and age_band not in dict(AGE_BANDS):
        errors["age_band"] = N_("年龄段不在可选范围内")
    if gender and gender not in dict(GENDERS):
        errors["gender"] = N_("性别不在可选范围内")
    return errors
