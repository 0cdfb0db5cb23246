"""Survey tables: definitions (survey, section, question), responses and answers, tokens, contact hashes.

Contacts of open-link respondents live only as salted hashes in ``survey_contacts``, a table with no link
to ``survey_responses``: it can say "this phone already answered" but never which answers are whose.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.db import Base, utcnow
from core.i18n import N_
from core.models import Unit


class SurveyStatus(enum.StrEnum):
    """Life of a survey definition: editable draft, collecting (frozen), closed."""

    draft = "draft"
    open = "open"
    closed = "closed"


STATUS_LABELS = {
    SurveyStatus.draft: N_("草稿"),
    SurveyStatus.open: N_("收集中"),
    SurveyStatus.closed: N_("已结束"),
}


class QuestionKind(enum.StrEnum):
    """Supported question types."""

    likert5 = "likert5"
    single = "single"
    multiple = "multiple"
    number = "number"
    integer = "integer"
    text = "text"
    note = "note"


KIND_LABELS = {
    QuestionKind.likert5: N_("五级量表"),
    QuestionKind.single: N_("单选"),
    QuestionKind.multiple: N_("多选"),
    QuestionKind.number: N_("数值"),
    QuestionKind.integer: N_("整数"),
    QuestionKind.text: N_("文本"),
    QuestionKind.note: N_("说明"),
}


class Survey(Base):
    """One version of a quarter's questionnaire; frozen once collection opens."""

    __tablename__ = "surveys"
    __table_args__ = (UniqueConstraint("quarter", "title", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    quarter: Mapped[str] = mapped_column(String(6), index=True)
    title: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[SurveyStatus] = mapped_column(
        Enum(SurveyStatus, native_enum=False, length=20), default=SurveyStatus.draft
    )
    # Per-survey HMAC key for contact hashes: hashes of one survey cannot be joined with another's.
    salt: Mapped[str] = mapped_column(String(64))
    previous_id: Mapped[int | None] = mapped_column(ForeignKey("surveys.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    opened_at: Mapped[datetime | None] = mapped_column(DateTime)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime)
    # XLSForm rows the online form does not use, kept (calculate, metadata, settings), and the import's
    # notes and warnings ([[line, sheet, message], ...]) so the editor can show them later.
    definition_extras: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    import_notes: Mapped[list[Any]] = mapped_column(JSON, default=list)

    sections: Mapped[list[SurveySection]] = relationship(
        back_populates="survey", order_by="SurveySection.position", cascade="all, delete-orphan"
    )
    questions: Mapped[list[Question]] = relationship(
        back_populates="survey", order_by="Question.position", cascade="all, delete-orphan"
    )

    @property
    def frozen(self) -> bool:
        """A survey that has opened for collection can no longer be edited."""
        return self.status != SurveyStatus.draft


class SurveySection(Base):
    """A titled group of questions (an XLSForm group)."""

    __tablename__ = "survey_sections"

    id: Mapped[int] = mapped_column(primary_key=True)
    survey_id: Mapped[int] = mapped_column(ForeignKey("surveys.id"), index=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    name: Mapped[str] = mapped_column(String(80), default="")
    title: Mapped[str] = mapped_column(String(200))

    survey: Mapped[Survey] = relationship(back_populates="sections")


class Question(Base):
    """A question; ``choices`` is a list of [code, label]; likert codes are "1".."5"."""

    __tablename__ = "survey_questions"
    __table_args__ = (UniqueConstraint("survey_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    survey_id: Mapped[int] = mapped_column(ForeignKey("surveys.id"), index=True)
    section_id: Mapped[int | None] = mapped_column(ForeignKey("survey_sections.id"))
    position: Mapped[int] = mapped_column(Integer, default=0)
    name: Mapped[str] = mapped_column(String(80))
    label: Mapped[str] = mapped_column(Text)
    kind: Mapped[QuestionKind] = mapped_column(Enum(QuestionKind, native_enum=False, length=20))
    required: Mapped[bool] = mapped_column(Boolean, default=False)
    hint: Mapped[str] = mapped_column(Text, default="")
    choices: Mapped[list[Any]] = mapped_column(JSON, default=list)
    # "不了解/不适用" offered: such answers are stored but kept out of every denominator.
    dont_know: Mapped[bool] = mapped_column(Boolean, default=False)
    dont_know_label: Mapped[str] = mapped_column(String(40), default="不了解/不适用")
    indicator_code: Mapped[str] = mapped_column(String(40), default="", index=True)
    service_area: Mapped[str] = mapped_column(String(80), default="")
    # XLSForm expressions in the subset of surveys.expressions, enforced on every submission.
    relevant: Mapped[str] = mapped_column(Text, default="")
    constraint: Mapped[str] = mapped_column(Text, default="")
    constraint_message: Mapped[str] = mapped_column(Text, default="")
    # Other languages ({"label": {lang: text}, "hint": …, "choices": …}) and unused XLSForm columns.
    translations: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    extras: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    survey: Mapped[Survey] = relationship(back_populates="questions")
    section: Mapped[SurveySection | None] = relationship()


class ResponseStatus(enum.StrEnum):
    """Whether an answer counts: accepted, held for an evaluator (a burst), or excluded by one."""

    accepted = "accepted"
    held = "held"
    excluded = "excluded"


RESPONSE_STATUS_LABELS = {
    ResponseStatus.accepted: N_("已计入"),
    ResponseStatus.held: N_("待审核"),
    ResponseStatus.excluded: N_("已排除"),
}


class SurveyResponse(Base):
    """One completed questionnaire; ``instance_id`` makes re-submission and re-upload add nothing.

    Only ``accepted`` responses enter results; held and excluded ones are kept for the evaluator's review.
    """

    __tablename__ = "survey_responses"
    __table_args__ = (UniqueConstraint("survey_id", "instance_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    survey_id: Mapped[int] = mapped_column(ForeignKey("surveys.id"), index=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    instance_id: Mapped[str] = mapped_column(String(100))
    source: Mapped[str] = mapped_column(String(20), default="online")  # online | panel | paper
    age_band: Mapped[str] = mapped_column(String(20), default="")
    gender: Mapped[str] = mapped_column(String(20), default="")
    district_code: Mapped[str] = mapped_column(String(40), default="")
    submitted_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    status: Mapped[ResponseStatus] = mapped_column(
        Enum(ResponseStatus, native_enum=False, length=20), default=ResponseStatus.accepted, index=True
    )
    hold_reason: Mapped[str] = mapped_column(String(40), default="")  # surveys.integrity.REASONS
    decided_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime)

    community: Mapped[Unit] = relationship()
    answers: Mapped[list[Answer]] = relationship(back_populates="response", cascade="all, delete-orphan")


class Answer(Base):
    """One answer: numbers (likert 1..5, numeric) in ``value_num``, codes/text in ``value_text``."""

    __tablename__ = "survey_answers"

    id: Mapped[int] = mapped_column(primary_key=True)
    response_id: Mapped[int] = mapped_column(ForeignKey("survey_responses.id"), index=True)
    question_id: Mapped[int] = mapped_column(ForeignKey("survey_questions.id"), index=True)
    value_num: Mapped[float | None] = mapped_column(Float)
    value_text: Mapped[str | None] = mapped_column(Text)
    dont_know: Mapped[bool] = mapped_column(Boolean, default=False)

    response: Mapped[SurveyResponse] = relationship(back_populates="answers")


class SurveyToken(Base):
    """A one-time panel token for one community; only its SHA-256 is stored."""

    __tablename__ = "survey_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    survey_id: Mapped[int] = mapped_column(ForeignKey("surveys.id"), index=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("units.id"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    used_at: Mapped[datetime | None] = mapped_column(DateTime)


class SurveyContact(Base):
    """HMAC of an open-link respondent's phone, kept apart from answers: dedupe without identifying."""

    __tablename__ = "survey_contacts"
    __table_args__ = (UniqueConstraint("survey_id", "contact_hash"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    survey_id: Mapped[int] = mapped_column(ForeignKey("surveys.id"), index=True)
    contact_hash: Mapped[str] = mapped_column(String(64))


class SurveySubmission(Base):
    """One open-link submission attempt, for the per-device / per-address limits and burst detection.

    Device and address are HMACs keyed with the instance secret and the survey's salt (never the raw IP
    or cookie), so they cannot be joined across surveys; the keys are cleared when the survey closes.
    ``outcome`` is ``stored`` (``response_id`` set) or the limit that refused it.
    """

    __tablename__ = "survey_submissions"

    id: Mapped[int] = mapped_column(primary_key=True)
    survey_id: Mapped[int] = mapped_column(ForeignKey("surveys.id"), index=True)
    response_id: Mapped[int | None] = mapped_column(ForeignKey("survey_responses.id"), index=True)
    device_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    address_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    outcome: Mapped[str] = mapped_column(String(20), default="stored")
    submitted_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)


class PaperUpload(Base):
    """Outcome of one paper upload, so rejected rows can be downloaded afterwards."""

    __tablename__ = "survey_paper_uploads"

    id: Mapped[int] = mapped_column(primary_key=True)
    survey_id: Mapped[int] = mapped_column(ForeignKey("surveys.id"), index=True)
    filename: Mapped[str] = mapped_column(String(200), default="")
    uploaded_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    stored: Mapped[int] = mapped_column(Integer, default=0)
    duplicates: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[Any] = mapped_column(JSON, default=list)  # [[line, column, message], ...] (first 200)
    rejected_total: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # all problems
    # A large file is imported by a job (surveys.jobs.import_paper_upload): queued → running → done/failed.
    status: Mapped[str] = mapped_column(String(20), default="done", server_default="done")
    valid_rows: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # to store, once read
    processed: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # of those, done so far
    message: Mapped[str] = mapped_column(Text, default="", server_default="")  # why a job failed
    payload: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)  # the file until it is read


class SurveyMargin(Base):
    """A population margin for weighting one survey: share or count of a category of a dimension."""

    __tablename__ = "survey_margins"
    __table_args__ = (UniqueConstraint("survey_id", "dimension", "category"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    survey_id: Mapped[int] = mapped_column(ForeignKey("surveys.id"), index=True)
    dimension: Mapped[str] = mapped_column(String(20))  # age_band | gender | district
    category: Mapped[str] = mapped_column(String(40))
    value: Mapped[float] = mapped_column(Float)  # a share or a count: normalised within the dimension
