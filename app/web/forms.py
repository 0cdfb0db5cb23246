"""WTForms for people: they carry the values; the intake service holds the rules."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, HiddenField, SelectField, StringField, TextAreaField
from wtforms.validators import Length, Optional


class IntakeForm(FlaskForm):
    """A resident's (or an operator's) request."""

    idempotency_key = HiddenField()
    category = SelectField("诉求类别", validate_choice=False)
    district = SelectField("所在区", validate_choice=False)
    street = SelectField("街道（乡镇）", validate_choice=False)
    community = SelectField("社区（村）", validate_choice=False)
    address = StringField("详细地址", render_kw={"placeholder": "如：幸福小区 3 栋 2 单元", "maxlength": 200})
    lat = StringField("纬度", validators=[Optional()])
    lng = StringField("经度", validators=[Optional()])
    description = TextAreaField(
        "诉求内容",
        render_kw={"rows": 5, "maxlength": 2000, "placeholder": "请描述发生了什么、在哪里、持续多久"},
    )
    contact_name = StringField("联系人姓名", render_kw={"maxlength": 40, "autocomplete": "name"})
    contact_phone = StringField(
        "手机号码",
        render_kw={"inputmode": "tel", "maxlength": 20, "autocomplete": "tel", "placeholder": "11 位手机号"},
    )
    anonymous = BooleanField("不公开我的姓名")


class LookupForm(FlaskForm):
    """Find one's own case by tracking number and phone number."""

    tracking_number = StringField("受理编号", validators=[Length(max=32)])
    contact_phone = StringField("手机号码", validators=[Length(max=20)], render_kw={"inputmode": "tel"})
