"""WTForms of the evaluator pages: they read and check what was posted and hand plain values to one
service call of the ``assessment`` package (which holds the rules and refuses bad values in Chinese)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from flask import request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from sqlalchemy import select
from wtforms import BooleanField, Field, HiddenField, StringField, TextAreaField
from wtforms.validators import DataRequired, InputRequired, Length, Optional, ValidationError

from app.extensions import db
from assessment.rankings import TIE_RULES
from assessment.systems import MAX_CODE_LENGTH
from assessment.vocabulary import ROLLUP_MODES
from core.models import Unit
from core.quarter import Quarter

# Evidence of 明察暗访 and checks: photos, scans, documents, recordings (downloaded as attachments only).
EVIDENCE_SUFFIXES = frozenset(
    [
        ".jpg",
        ".jpeg",
        ".png",
        ".gif",
        ".webp",
        ".heic",
        ".pdf",
        ".doc",
        ".docx",
        ".xls",
        ".xlsx",
        ".ppt",
        ".pptx",
        ".txt",
        ".csv",
        ".mp3",
        ".m4a",
        ".wav",
        ".mp4",
        ".mov",
    ]
)
RULE_FIELDS = ("lower", "upper", "higher_is_better", "thresholds", "per_item", "cap", "threshold", "below")


def _finite_number(_form: Any, field: Field) -> None:
    """A number typed in Chinese or ASCII digits, finite (the services re-check their own bounds)."""
    text = str(field.data or "").strip()
    try:
        value = float(text)
    except ValueError:
        raise ValidationError(_("%(label)s必须是数字", label=field.label.text)) from None
    if not math.isfinite(value):
        raise ValidationError(_("%(label)s必须是有限的数字", label=field.label.text))


def _quarter_text(_form: Any, field: Field) -> None:
    try:
        Quarter.parse(field.data or "")
    except ValueError:
        raise ValidationError(_("季度格式应为 2026Q3")) from None


def _json_object(_form: Any, field: Field) -> None:
    try:
        value = json.loads(field.data or "")
    except ValueError:
        raise ValidationError(_("%(label)s不是有效的 JSON", label=field.label.text)) from None
    if not isinstance(value, dict):
        raise ValidationError(_("%(label)s必须是 JSON 对象", label=field.label.text))


def messages(form: FlaskForm) -> list[str]:
    """The form's errors as a flat list of Chinese sentences (CSRF failures included)."""
    out: list[str] = [str(e) for e in form.form_errors]
    for name, errors in form.errors.items():
        if name is None:
            continue
        for error in errors if isinstance(errors, list) else [errors]:
            out.append(_("页面已过期，请刷新后重试") if name == "csrf_token" else str(error))
    return out


class QuarterForm(FlaskForm):
    """A quarter typed as 2026Q3 (create the default system for it)."""

    quarter = StringField(_l("季度"), validators=[InputRequired(_l("请填写季度")), _quarter_text])


class EntryForm(FlaskForm):
    """An evaluator's value for an entry code, with an optional evidence file."""

    quarter = HiddenField(_l("季度"), validators=[Optional(), _quarter_text])
    unit = StringField(_l("单位编码"), validators=[InputRequired(_l("请填写单位编码")), Length(max=64)])
    code = StringField(_l("录入项编码"), validators=[InputRequired(_l("请填写录入项编码")), Length(max=60)])
    value = StringField(_l("取值"), validators=[InputRequired(_l("请填写取值")), _finite_number])
    note = TextAreaField(_l("情况说明"), validators=[Length(max=2000)])
    evidence = FileField(_l("佐证材料"))

    def validate_unit(self, field: Field) -> None:
        """The unit code must name a unit (said together with the other fields' errors)."""
        if db.session.scalar(select(Unit.id).where(Unit.code == (field.data or "").strip())) is None:
            raise ValidationError(_("单位编码不存在"))

    def validate_evidence(self, field: Field) -> None:
        """Only the allowed evidence types (the file is saved once the entry is valid)."""
        name = getattr(field.data, "filename", "") or ""
        if name and Path(name).suffix.lower() not in EVIDENCE_SUFFIXES:
            raise ValidationError(_("证据文件类型不支持，请上传图片、PDF、Office 文档、文本或音视频文件"))


class DecisionForm(FlaskForm):
    """The evaluators' decision on a review item."""

    decision = TextAreaField(
        _l("审核结论"), validators=[DataRequired(_l("请填写审核结论")), Length(max=4000)]
    )


class CompositeForm(FlaskForm):
    """A new version of the 三率 composite weights."""

    response = StringField(
        _l("响应率权重"), validators=[InputRequired(_l("请填写响应率权重")), _finite_number]
    )
    resolution = StringField(
        _l("解决率权重"), validators=[InputRequired(_l("请填写解决率权重")), _finite_number]
    )
    satisfaction = StringField(
        _l("满意率权重"), validators=[InputRequired(_l("请填写满意率权重")), _finite_number]
    )
    note = StringField(_l("说明"), validators=[Length(max=500)])

    def values(self) -> tuple[float, float, float]:
        """The three weights as numbers (the service normalises them)."""
        return float(self.response.data), float(self.resolution.data), float(self.satisfaction.data)


class ActionForm(FlaskForm):
    """Which edit of an indicator system was posted (add, edit, delete, copy, json, weights)."""

    class Meta:
        csrf = False  # the action's own form checks the token

    action = HiddenField()


class NodeForm(FlaskForm):
    """Add a leaf under ``parent`` or edit the node ``code``: name, weight, and for a leaf rule and source."""

    action = HiddenField()
    parent = HiddenField()
    code = StringField(_l("编码"), validators=[Length(max=MAX_CODE_LENGTH)])
    name = StringField(_l("名称"), validators=[Length(max=120)])
    weight = StringField(_l("权重"))
    rule_kind = StringField(_l("评分规则类型"))
    lower = StringField(_l("下限"))
    upper = StringField(_l("上限"))
    higher_is_better = BooleanField(_l("越高越好"), false_values=("", "0", "false"))
    thresholds = TextAreaField(_l("档位"))
    per_item = StringField(_l("每项分值"))
    cap = StringField(_l("加分上限"))
    threshold = StringField(_l("否决线"))
    below = BooleanField(_l("低于否决线即否决"), false_values=("", "0", "false"))
    veto_scope = StringField(_l("否决范围"), default="node")
    source_kind = StringField(_l("来源类型"))
    source_key = StringField(_l("来源编码"), validators=[Length(max=120)])

    def rule_fields(self) -> dict[str, Any]:
        """The rule's typed fields as the service reads them (booleans as "1"/"")."""
        out: dict[str, Any] = {}
        for name in RULE_FIELDS:
            value = getattr(self, name).data
            out[name] = ("1" if value else "") if isinstance(value, bool) else (value or "")
        return out


class DeleteForm(FlaskForm):
    """Delete a node and its subtree."""

    code = HiddenField(validators=[InputRequired()])


class CopyForm(FlaskForm):
    """Copy a system to another quarter."""

    quarter = StringField(_l("季度"), validators=[InputRequired(_l("请填写季度")), _quarter_text])


class JsonForm(FlaskForm):
    """Import a whole tree and its sources as JSON."""

    quarter = StringField(_l("适用季度"), validators=[Optional(), _quarter_text])
    tree = TextAreaField(_l("指标树"), validators=[InputRequired(_l("请填写指标树")), _json_object])
    sources = TextAreaField(_l("数据来源"), validators=[InputRequired(_l("请填写数据来源")), _json_object])
    rollup = StringField(_l("汇总方式"), validators=[Optional()])
    tie_rule = StringField(_l("并列名次规则"), validators=[Optional()])

    def validate_rollup(self, field: Field) -> None:
        """population or equal."""
        if field.data and field.data not in ROLLUP_MODES:
            raise ValidationError(_("汇总方式必须是 population（按人口加权）或 equal（等权）"))

    def validate_tie_rule(self, field: Field) -> None:
        """One of the declared tie rules."""
        if field.data and field.data not in TIE_RULES:
            raise ValidationError(_("未知的并列名次规则：%(rule)s", rule=field.data))


def _fraction(text: str) -> float:
    """Read "3", "0.333" or "1/3" (how judges write reciprocals)."""
    if "/" in text:
        top, bottom = text.split("/", 1)
        return float(top) / float(bottom)
    return float(text)


def matrix_from_cells(form: Any) -> list[list[float]]:
    """The AHP matrix from the labelled grid's upper-triangle cells ``m_<i>_<j>`` (i < j); lower = reciprocal."""
    cells: dict[tuple[int, int], float] = {}
    for key, text in form.items():
        parts = key.split("_")
        if len(parts) == 3 and parts[0] == "m" and parts[1].isdigit() and parts[2].isdigit():
            i, j = int(parts[1]), int(parts[2])
            if i < j < 50:
                if not str(text).strip():
                    raise ValueError("empty cell")
                cells[(i, j)] = _fraction(str(text))
    if not cells:
        return []
    n = max(j for _, j in cells) + 1
    matrix = [[1.0] * n for _ in range(n)]
    for i in range(n):
        for j in range(i + 1, n):
            if (i, j) not in cells:
                raise ValueError("missing cell")
            matrix[i][j] = cells[(i, j)]
            matrix[j][i] = 1.0 / cells[(i, j)]
    return matrix


class WeightsForm(FlaskForm):
    """One group's child weights: direct (``w_<code>`` fields), an AHP matrix, or entropy at run time."""

    node = StringField(_l("上级指标编码"), validators=[InputRequired(_l("请填写上级指标编码"))])
    method = StringField(_l("方法"), default="direct")
    matrix = TextAreaField(_l("判断矩阵"))

    def validate_method(self, field: Field) -> None:
        """direct, ahp or entropy."""
        if (field.data or "direct") not in ("direct", "ahp", "entropy"):
            raise ValidationError(_("权重方法必须是 direct、ahp 或 entropy"))

    def validate_matrix(self, field: Field) -> None:
        """Rows of numbers (1/3 allowed) when the method is AHP."""
        if self.method.data == "ahp":
            try:
                self.parsed_matrix()
            except (ValueError, ZeroDivisionError):
                raise ValidationError(_("判断矩阵只能填写数字或分数（如 1/3），每行一行、空格分隔")) from None

    def parsed_matrix(self) -> list[list[float]] | None:
        """The AHP matrix as numbers, or None for the other methods."""
        if self.method.data != "ahp":
            return None
        text = (self.matrix.data or "").strip()
        if not text:
            return matrix_from_cells(request.form)
        return [
            [_fraction(x) for x in line.replace(",", " ").split()]
            for line in text.splitlines()
            if line.strip()
        ]

    def validate(self, extra_validators: Any = None) -> bool:
        """The fields, then the ``w_<code>`` weights (their names follow the tree, so they are read by prefix)."""
        ok = super().validate(extra_validators)
        self.direct: dict[str, float] = {}
        for key, text in request.form.items():
            if key.startswith("w_") and str(text).strip():
                try:
                    self.direct[key[2:]] = float(text)
                except ValueError:
                    self.form_errors.append(f"权重「{text}」必须是数字")
                    ok = False
        return ok
