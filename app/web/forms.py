"""WTForms for people: they carry the values; the intake service holds the rules.

``Form`` is the base every form should use: each text field (StringField, TextAreaField, HiddenField,
SelectField values) is checked by the shared validator of ``core.inputs`` — the same one the JSON API and
the file imports use — so a NUL or other control character gets a field error and the rest of the input
stays on the page.
"""

from __future__ import annotations

from typing import Any

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    Field,
    HiddenField,
    MultipleFileField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import Length, Optional, ValidationError

from app.i18n import message_of
from core.inputs import column_length, text_problem
from routing.intake import LIMITS
from routing.models import Case

TEXT_FIELDS = (StringField, TextAreaField, HiddenField, SelectField)


class CleanText:
    """WTForms validator: no control characters (newlines only in a TextAreaField), at most ``max_length``."""

    def __init__(self, max_length: int | None = None) -> None:
        self.max_length = max_length

    def __call__(self, form: Any, field: Field) -> None:
        """Raise ValidationError with the shared zh-CN message."""
        value = field.data if isinstance(field.data, str) else None
        problem = text_problem(value, self.max_length, multiline=isinstance(field, TextAreaField))
        if problem is not None:
            raise ValidationError(message_of(problem))


class Form(FlaskForm):
    """FlaskForm whose every text field passes :class:`CleanText` (added once, before its own validators)."""

    def validate(self, extra_validators: Any = None) -> bool:
        """Validate, with the character check on every text field."""
        extra: dict[str, list[Any]] = {k: list(v) for k, v in (extra_validators or {}).items()}
        for name, field in self._fields.items():
            if isinstance(field, TEXT_FIELDS):
                extra.setdefault(name, []).insert(0, CleanText())
        return super().validate(extra_validators=extra)


class IntakeForm(Form):
    """A resident's (or an operator's) request."""

    idempotency_key = HiddenField()
    category = SelectField(_l("诉求类别"), validate_choice=False)
    district = SelectField(_l("所在区"), validate_choice=False)
    street = SelectField(_l("街道（乡镇）"), validate_choice=False)
    community = SelectField(_l("社区（村）"), validate_choice=False)
    address = StringField(
        _l("详细地址"),
        render_kw={"placeholder": _l("如：幸福小区 3 栋 2 单元"), "maxlength": column_length(Case.address)},
    )
    lat = StringField(_l("纬度"), validators=[Optional()])
    lng = StringField(_l("经度"), validators=[Optional()])
    description = TextAreaField(
        _l("诉求内容"),
        render_kw={
            "rows": 5,
            "maxlength": LIMITS["description"],
            "placeholder": _l("请描述发生了什么、在哪里、持续多久"),
        },
    )
    contact_name = StringField(
        _l("联系人姓名"), render_kw={"maxlength": column_length(Case.contact_name), "autocomplete": "name"}
    )
    contact_phone = StringField(
        _l("手机号码"),
        render_kw={
            "inputmode": "tel",
            "maxlength": column_length(Case.contact_phone),
            "autocomplete": "tel",
            "placeholder": _l("11 位手机号"),
        },
    )
    anonymous = BooleanField(_l("不公开我的姓名"))
    sms_opt_in = BooleanField(_l("用短信告诉我办理进展（受理、派单、办结、重办）"))
    photos = MultipleFileField(
        _l("现场照片（可选，最多 6 张）"), render_kw={"accept": "image/jpeg,image/png,image/heic,image/heif"}
    )
    # Set once the resident has been shown possible duplicates (by intake.js, or by the server without JS).
    duplicates_seen = HiddenField()


class LookupForm(Form):
    """Find one's own case by tracking number and phone number."""

    tracking_number = StringField(
        _l("受理编号"), validators=[Length(max=column_length(Case.tracking_number) or 32)]
    )
    contact_phone = StringField(
        _l("手机号码"),
        validators=[Length(max=column_length(Case.contact_phone) or 20)],
        render_kw={"inputmode": "tel"},
    )
