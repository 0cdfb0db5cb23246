"""Survey use cases. Each takes an explicit Session and flushes; the caller commits.

Required sample per community
-----------------------------
The index is a mean on a 0–100 scale, so the sample is sized for a mean:
``required_sample_size_mean(margin, sd, confidence, population)`` with defaults margin ±5 index points,
an assumed respondent-score standard deviation of 25 points (a 5-point scale maps 1 step to 25 points;
observed SDs of respondent means are usually 15–25, so 25 is conservative) and 95 % confidence, with
Cochran's finite population correction by the community's registered population. That gives 97 for a
large community. All three are arguments (the web shell reads them from configuration).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.csvio import ImportRejected, RowError, read_rows
from core.db import utcnow
from core.i18n import N_
from core.models import Level, Unit, User
from core.quarter import Quarter
from surveys import integrity
from surveys.definitions import (
    AGE_BANDS,
    GENDERS,
    AnswerValue,
    QuestionSpec,
    SurveyError,
    SurveySpec,
    check_question,
    validate_answers,
    validate_respondent,
)
from surveys.models import (
    Answer,
    PaperUpload,
    Question,
    ResponseStatus,
    Survey,
    SurveyContact,
    SurveyMargin,
    SurveyResponse,
    SurveySection,
    SurveyStatus,
    SurveyToken,
)
from surveys.stats import required_sample_size_mean

DEFAULT_MARGIN = 5.0
DEFAULT_SD = 25.0
DEFAULT_CONFIDENCE = 0.95
MAX_TOKENS = 500


def get_survey(session: Session, survey_id: int) -> Survey:
    """The survey or a ``not_found`` SurveyError."""
    survey = session.get(Survey, survey_id)
    if survey is None:
        raise SurveyError("not_found", N_("问卷不存在"))
    return survey


def _editable(survey: Survey) -> None:
    if survey.frozen:
        raise SurveyError("frozen", N_("问卷已开始收集，不能再修改；如需修改请另建新版本"))


def create_survey(session: Session, quarter: str, title: str) -> Survey:
    """A new draft survey (version 1, or the next version of the same title and quarter)."""
    q = str(Quarter.parse(quarter)) if _quarter_ok(quarter) else None
    if q is None:
        raise SurveyError("bad_quarter", N_("季度格式应为 2026Q3"), "quarter")
    title = title.strip()
    if not title or len(title) > 200:
        raise SurveyError("title_required", N_("请填写问卷标题（最多 200 字）"), "title")
    last = session.scalar(select(func.max(Survey.version)).where(Survey.quarter == q, Survey.title == title))
    survey = Survey(quarter=q, title=title, version=(last or 0) + 1, salt=secrets.token_hex(32))
    session.add(survey)
    session.flush()
    return survey


def _quarter_ok(text: str) -> bool:
    try:
        Quarter.parse(text)
    except ValueError:
        return False
    return True


def add_section(session: Session, survey: Survey, title: str, name: str = "") -> SurveySection:
    """Append a section to a draft survey."""
    _editable(survey)
    if not title.strip():
        raise SurveyError("title_required", N_("请填写分组标题"), "title")
    section = SurveySection(survey=survey, title=title.strip(), name=name, position=len(survey.sections))
    session.add(section)
    session.flush()
    return section


def add_question(
    session: Session, survey: Survey, spec: QuestionSpec, section: SurveySection | None = None
) -> Question:
    """Append a question to a draft survey (to ``section`` or none)."""
    _editable(survey)
    check_question(spec, {q.name for q in survey.questions})
    if section is not None and section.survey_id != survey.id:
        raise SurveyError("bad_section", N_("分组不属于此问卷"), "section")
    question = Question(
        survey=survey,
        section=section,
        position=len(survey.questions),
        name=spec.name,
        label=spec.label.strip(),
        kind=spec.kind,
        required=spec.required,
        hint=spec.hint,
        choices=spec.choices,
        dont_know=spec.dont_know,
        dont_know_label=spec.dont_know_label,
        indicator_code=spec.indicator_code.strip(),
        service_area=spec.service_area.strip(),
        relevant=spec.relevant,
        constraint=spec.constraint,
        constraint_message=spec.constraint_message,
        translations=spec.translations,
        extras=spec.extras,
    )
    session.add(question)
    session.flush()
    return question


def _question_of(survey: Survey, question_id: int) -> Question:
    question = next((q for q in survey.questions if q.id == question_id), None)
    if question is None:
        raise SurveyError("not_found", N_("题目不存在"))
    return question


def _renumber(survey: Survey) -> None:
    for position, question in enumerate(survey.questions):
        question.position = position


def update_question(
    session: Session,
    survey: Survey,
    question_id: int,
    spec: QuestionSpec,
    section: SurveySection | None = None,
) -> Question:
    """Change a draft survey's question (code, text, kind, choices, section …); keeps XLSForm-only fields."""
    _editable(survey)
    question = _question_of(survey, question_id)
    check_question(spec, {q.name for q in survey.questions if q.id != question.id})
    if section is not None and section.survey_id != survey.id:
        raise SurveyError("bad_section", N_("分组不属于此问卷"), "section")
    question.section = section
    question.name = spec.name
    question.label = spec.label.strip()
    question.kind = spec.kind
    question.required = spec.required
    question.hint = spec.hint
    question.choices = spec.choices
    question.dont_know = spec.dont_know
    question.indicator_code = spec.indicator_code.strip()
    question.service_area = spec.service_area.strip()
    session.flush()
    return question


def delete_question(session: Session, survey: Survey, question_id: int) -> None:
    """Remove a question from a draft survey; the others close up in the same order."""
    _editable(survey)
    question = _question_of(survey, question_id)
    survey.questions.remove(question)
    session.delete(question)
    _renumber(survey)
    session.flush()


def move_question(session: Session, survey: Survey, question_id: int, offset: int) -> None:
    """Move a draft survey's question ``offset`` places (−1 up, +1 down), clamped to the list."""
    _editable(survey)
    question = _question_of(survey, question_id)
    order = list(survey.questions)
    start = order.index(question)
    end = max(0, min(len(order) - 1, start + offset))
    order.insert(end, order.pop(start))
    for position, item in enumerate(order):
        item.position = position
    session.flush()
    session.expire(survey, ["questions"])


def apply_spec(session: Session, survey: Survey, spec: SurveySpec) -> int:
    """Add an imported definition's sections and questions to a draft survey; returns questions added."""
    _editable(survey)
    taken = {q.name for q in survey.questions}
    clashes = [q.name for q in spec.questions() if q.name in taken]
    if clashes:
        raise SurveyError("duplicate_name", N_("题目代码已存在：") + "、".join(clashes[:10]))
    added = 0
    for section_spec in spec.sections:
        section = (
            add_section(session, survey, section_spec.title, section_spec.name)
            if section_spec.title
            else None
        )
        for question_spec in section_spec.questions:
            add_question(session, survey, question_spec, section)
            added += 1
    if spec.extras:
        survey.definition_extras = {**(survey.definition_extras or {}), **spec.extras}
    survey.import_notes = [[n.line, n.column or "", n.message] for n in spec.notes]
    session.flush()
    return added


def open_survey(session: Session, survey: Survey) -> None:
    """Start collection: the definition is frozen from now on."""
    if survey.status != SurveyStatus.draft:
        raise SurveyError("not_draft", N_("只有草稿状态的问卷可以开始收集"))
    if not any(q.kind != "note" for q in survey.questions):
        raise SurveyError("empty", N_("问卷没有任何题目，不能开始收集"))
    survey.status, survey.opened_at = SurveyStatus.open, utcnow()
    session.flush()


def close_survey(session: Session, survey: Survey) -> bool:
    """End collection; closing a closed survey changes nothing (False)."""
    if survey.status == SurveyStatus.closed:
        return False
    if survey.status != SurveyStatus.open:
        raise SurveyError("not_open", N_("问卷尚未开始收集"))
    survey.status, survey.closed_at = SurveyStatus.closed, utcnow()
    integrity.forget_clients(session, survey)
    session.flush()
    return True


def new_version(session: Session, survey: Survey) -> Survey:
    """A draft copy of ``survey`` as its next version; answers stay with the old version."""
    copy = create_survey(session, survey.quarter, survey.title)
    copy.previous_id = survey.id
    copy.definition_extras = dict(survey.definition_extras or {})
    sections: dict[int, SurveySection] = {}
    for section in survey.sections:
        sections[section.id] = add_section(session, copy, section.title, section.name)
    for q in survey.questions:
        spec = QuestionSpec(
            q.name,
            q.label,
            q.kind,
            q.required,
            q.hint,
            [list(c) for c in q.choices],
            q.dont_know,
            q.dont_know_label,
            q.indicator_code,
            q.service_area,
            q.relevant,
            q.constraint,
            q.constraint_message,
            dict(q.translations or {}),
            dict(q.extras or {}),
        )
        add_question(session, copy, spec, sections.get(q.section_id) if q.section_id else None)
    return copy


# ---------------------------------------------------------------------------------------------- collection


def community_by_code(session: Session, code: str) -> Unit:
    """An active community by code, or a ``not_found`` SurveyError."""
    unit = session.scalar(
        select(Unit).where(Unit.code == code, Unit.level == Level.community, Unit.active.is_(True))
    )
    if unit is None:
        raise SurveyError("unknown_community", N_("社区不存在"), "community")
    return unit


def _district_code(session: Session, community: Unit) -> str:
    ids = community.ancestor_ids()
    if len(ids) < 2:
        return ""
    return session.scalar(select(Unit.code).where(Unit.id == ids[1])) or ""


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def generate_tokens(session: Session, survey: Survey, community: Unit, count: int) -> list[str]:
    """``count`` one-time panel tokens for a community; only their hashes are stored."""
    if not 1 <= count <= MAX_TOKENS:
        raise SurveyError("bad_count", N_("一次可生成 1 到 500 个答卷码"), "count")
    if survey.status == SurveyStatus.closed:
        raise SurveyError("closed", N_("问卷已结束收集"))
    tokens = [secrets.token_urlsafe(12) for _ in range(count)]
    session.add_all(
        SurveyToken(survey_id=survey.id, community_id=community.id, token_hash=_token_hash(t)) for t in tokens
    )
    session.flush()
    return tokens


def contact_hash(survey: Survey, contact: str) -> str:
    """HMAC-SHA256 of the normalised contact with the survey's own salt."""
    digits = "".join(ch for ch in contact if ch.isdigit())
    return hmac.new(survey.salt.encode(), digits.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Respondent:
    """Weighting fields a respondent may give."""

    age_band: str = ""
    gender: str = ""


class InvalidAnswers(SurveyError):
    """Answers with errors by field name; nothing was stored."""

    def __init__(self, errors: Mapping[str, str]) -> None:
        super().__init__("invalid", N_("问卷填写有误，请按提示修改"))
        self.errors = dict(errors)


def submit_online(
    session: Session,
    survey: Survey,
    community: Unit,
    raw: Mapping[str, Sequence[str]],
    respondent: Respondent,
    token: str | None = None,
    contact: str | None = None,
    client: integrity.Client | None = None,
    limits: integrity.Limits | None = None,
) -> SurveyResponse:
    """Store one online questionnaire; refuse invalid answers, a used token and a repeated contact.

    Without a token, ``client`` (device and address hashes) is held to ``limits``: over a limit the answer
    is refused with :class:`surveys.integrity.LimitReached`; in a burst it is stored but held for review.
    """
    if survey.status != SurveyStatus.open:
        raise SurveyError("not_open", N_("该问卷目前不在收集期"))
    answers, errors = validate_answers(survey.questions, raw)
    errors.update(validate_respondent(respondent.age_band, respondent.gender))
    digits = "".join(ch for ch in contact or "" if ch.isdigit())
    if contact and not (len(digits) == 11 and digits.startswith("1")):
        errors["contact"] = N_("请填写 11 位手机号码，或留空")
    token_row = None
    if token:
        token_row = session.scalar(select(SurveyToken).where(SurveyToken.token_hash == _token_hash(token)))
        if token_row is None or token_row.survey_id != survey.id or token_row.community_id != community.id:
            raise SurveyError("bad_token", N_("答卷码无效"))
        if token_row.used_at is not None:
            raise SurveyError("token_used", N_("该答卷码已使用过，每个答卷码只能提交一次"))
    if errors:
        raise InvalidAnswers(errors)
    checked = client if token_row is None and client is not None and limits is not None else None
    hold = integrity.admit(session, survey, checked, limits) if checked and limits else ""
    # The instance id carries the dedupe into a unique constraint: a token can be spent only once even
    # when two submissions race, and so can a contact (its hash row is unique per survey as well).
    instance = f"token-{token_row.id}" if token_row else f"web-{uuid.uuid4().hex}"
    try:
        with session.begin_nested():
            if digits:
                session.add(SurveyContact(survey_id=survey.id, contact_hash=contact_hash(survey, digits)))
            if token_row is not None:
                token_row.used_at = utcnow()
            response = _store(
                session,
                survey,
                community,
                instance,
                "panel" if token_row else "online",
                respondent,
                _district_code(session, community),
                answers,
            )
            if checked and limits:
                integrity.record(session, survey, checked, response, hold, limits)
    except IntegrityError as exc:
        if token_row is not None:
            raise SurveyError("token_used", N_("该答卷码已使用过，每个答卷码只能提交一次")) from exc
        raise SurveyError("duplicate", N_("该手机号码已提交过本问卷，每人只能填写一次"), "contact") from exc
    return response


def _store(
    session: Session,
    survey: Survey,
    community: Unit,
    instance: str,
    source: str,
    respondent: Respondent,
    district: str,
    answers: Mapping[str, AnswerValue],
) -> SurveyResponse:
    by_name = {q.name: q for q in survey.questions}
    response = SurveyResponse(
        survey_id=survey.id,
        community_id=community.id,
        instance_id=instance,
        source=source,
        age_band=respondent.age_band,
        gender=respondent.gender,
        district_code=district,
    )
    response.answers = [
        Answer(
            question_id=by_name[name].id,
            value_num=a.value_num,
            value_text=a.value_text,
            dont_know=a.dont_know,
        )
        for name, a in answers.items()
    ]
    session.add(response)
    session.flush()
    return response


def import_paper(
    session: Session, survey: Survey, data: bytes, filename: str, user: User | None = None
) -> PaperUpload:
    """Store every valid row of a paper file; rejected rows are recorded; known instance ids add nothing."""
    from surveys import paper  # paper builds on _store below; imported here to keep the modules acyclic

    return paper.import_paper(session, survey, data, filename, user)


def rejected_rows(upload: PaperUpload) -> list[RowError]:
    """The rejected rows of an upload."""
    return [RowError(int(line), message, column or None) for line, column, message in upload.rejected]


# ---------------------------------------------------------------------------------------------- progress


@dataclass(frozen=True)
class Progress:
    """Collection progress of one community."""

    community_code: str
    community_name: str
    population: int | None
    responses: int
    required: int

    @property
    def share(self) -> float:
        """Responses as a share of the required sample (may exceed 1)."""
        return self.responses / self.required if self.required else 0.0


def required_sample(
    population: int | None,
    margin: float = DEFAULT_MARGIN,
    sd: float = DEFAULT_SD,
    confidence: float = DEFAULT_CONFIDENCE,
) -> int:
    """Respondents a community needs for its index within ±margin points (see the module docstring)."""
    return required_sample_size_mean(margin, sd, confidence, population if population else None)


def progress(
    session: Session,
    survey: Survey,
    margin: float = DEFAULT_MARGIN,
    sd: float = DEFAULT_SD,
    confidence: float = DEFAULT_CONFIDENCE,
    under: Unit | None = None,
) -> list[Progress]:
    """Responses against the required sample for every community (optionally under one unit)."""
    counts = (
        select(SurveyResponse.community_id, func.count().label("n"))
        .where(SurveyResponse.survey_id == survey.id, SurveyResponse.status == ResponseStatus.accepted)
        .group_by(SurveyResponse.community_id)
        .subquery()
    )
    query = (
        select(Unit.code, Unit.name, Unit.population, func.coalesce(counts.c.n, 0))
        .outerjoin(counts, counts.c.community_id == Unit.id)
        .where(Unit.level == Level.community, Unit.active.is_(True))
        .order_by(Unit.code)
    )
    if under is not None:
        query = query.where(Unit.path.startswith(under.path))
    out: list[Progress] = []
    cache: dict[Any, int] = {}
    for code, name, population, n in session.execute(query):
        if population not in cache:
            cache[population] = required_sample(population, margin, sd, confidence)
        out.append(Progress(code, name, population, int(n), cache[population]))
    return out


# ---------------------------------------------------------------------------------------------- weighting

MARGIN_DIMENSIONS = {"age_band": N_("年龄段"), "gender": N_("性别"), "district": N_("区")}
MARGIN_COLUMNS = ("dimension", "category", "share_or_count")


def set_margins(session: Session, survey: Survey, data: bytes | str) -> int:
    """Replace a survey's population margins from CSV (dimension, category, share_or_count); all or nothing.

    Dimensions are age_band, gender and district (a district unit code); a value is a share or a count,
    normalised within its dimension. Any bad line rejects the whole file (:class:`ImportRejected`) and the
    margins stored before stay as they were. Returns the number of margin rows stored.
    """
    districts = set(session.scalars(select(Unit.code).where(Unit.level == Level.district)))
    allowed = {"age_band": set(dict(AGE_BANDS)), "gender": set(dict(GENDERS)), "district": districts}
    errors: list[RowError] = []
    seen: dict[tuple[str, str], int] = {}
    first_line: dict[str, int] = {}
    totals: dict[str, float] = {}
    parsed: list[SurveyMargin] = []
    for line, row in read_rows(data, MARGIN_COLUMNS):
        dimension, category, text = row["dimension"], row["category"], row["share_or_count"]
        if dimension not in MARGIN_DIMENSIONS:
            errors.append(RowError(line, N_("维度只能是 age_band、gender 或 district"), "dimension"))
            continue
        if category not in allowed[dimension]:
            what = N_("区代码不存在") if dimension == "district" else N_("类别不在可选范围内")
            errors.append(RowError(line, f"{what}：{category or N_('（空）')}", "category"))
            continue
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not (value >= 0 and value != float("inf")):
            errors.append(RowError(line, N_("占比或人数必须是非负数"), "share_or_count"))
            continue
        if (dimension, category) in seen:
            errors.append(
                RowError(line, f"{N_('与第')} {seen[dimension, category]} {N_('行重复')}", "category")
            )
            continue
        seen[dimension, category] = line
        parsed.append(SurveyMargin(survey_id=survey.id, dimension=dimension, category=category, value=value))
        first_line.setdefault(dimension, line)
        totals[dimension] = totals.get(dimension, 0.0) + value
    for dimension, total in totals.items():
        if total <= 0:
            errors.append(
                RowError(first_line[dimension], N_("该维度的占比或人数合计必须大于 0"), "share_or_count")
            )
    if not seen and not errors:
        errors.append(RowError(1, N_("文件中没有边际分布")))
    if errors:
        raise ImportRejected(errors)
    session.execute(delete(SurveyMargin).where(SurveyMargin.survey_id == survey.id))
    session.add_all(parsed)
    session.flush()
    return len(parsed)


def clear_margins(session: Session, survey: Survey) -> None:
    """Remove a survey's margins: its results go back to unweighted only."""
    session.execute(delete(SurveyMargin).where(SurveyMargin.survey_id == survey.id))
    session.flush()


def survey_margins(session: Session, survey_id: int) -> dict[str, dict[str, float]]:
    """Stored margins of a survey: {dimension: {category: share or count}} in upload order."""
    rows = session.execute(
        select(SurveyMargin.dimension, SurveyMargin.category, SurveyMargin.value)
        .where(SurveyMargin.survey_id == survey_id)
        .order_by(SurveyMargin.id)
    ).all()
    out: dict[str, dict[str, float]] = {}
    for dimension, category, value in rows:
        out.setdefault(dimension, {})[category] = float(value)
    return out
