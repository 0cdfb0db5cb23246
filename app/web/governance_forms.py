"""Forms of the co-governance pages: they carry values; ``governance.services`` holds the rules."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf.file import FileField
from wtforms import (
    DateField,
    DateTimeLocalField,
    DecimalField,
    IntegerField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, InputRequired, Optional

from app.web.forms import Form


def _choices(*pairs: tuple[str, str]) -> list[SelectChoice]:
    return [SelectChoice(value, label) for value, label in pairs]


class TopicForm(Form):
    """Raise a topic (民事民提)."""

    place = SelectField(_l("所在小区/社区"), validate_choice=False)
    title = StringField(_l("议题标题"), validators=[DataRequired(message=_l("请填写议题标题"))])
    description = TextAreaField(_l("议题内容"), validators=[DataRequired(message=_l("请说明议题的内容"))])
    cases = StringField(_l("关联诉求（受理编号，多个用逗号分隔，可不填）"))


class CommentForm(Form):
    """A comment, or meeting minutes (staff), with an optional attachment."""

    body = TextAreaField(_l("发表意见"), validators=[DataRequired(message=_l("请填写内容"))])
    kind = SelectField(
        _l("类型"), choices=_choices(("comment", _l("留言")), ("minutes", _l("会议纪要"))), default="comment"
    )
    attachment = FileField(_l("附件（可选）"))


class BallotForm(Form):
    """A resident's ballot."""

    choice = SelectField(
        _l("您的意见"), choices=_choices(("yes", _l("同意")), ("no", _l("不同意")), ("abstain", _l("弃权")))
    )


class RatingForm(Form):
    """A resident's rating of the outcome."""

    score = SelectField(
        _l("评分"),
        choices=_choices(
            ("5", _l("5 分 · 很满意")),
            ("4", _l("4 分")),
            ("3", _l("3 分")),
            ("2", _l("2 分")),
            ("1", _l("1 分 · 很不满意")),
        ),
    )
    comment = TextAreaField(_l("评价意见（可选）"))


class OpenVoteForm(Form):
    """Put a topic to the vote."""

    closes_at = DateTimeLocalField(
        _l("表决截止时间（北京时间）"),
        format="%Y-%m-%dT%H:%M",
        validators=[DataRequired(message=_l("请填写截止时间"))],
    )
    quorum = IntegerField(
        _l("法定票数（至少投票人数）"), validators=[InputRequired(message=_l("请填写法定票数"))]
    )
    majority = SelectField(
        _l("通过比例"),
        choices=_choices(("0.5", _l("过半数（>50%）")), ("0.6667", _l("三分之二以上"))),
        default="0.5",
    )


class DecisionForm(Form):
    """A meeting decision instead of a vote."""

    minutes = TextAreaField(_l("会议决定（纪要）"), validators=[DataRequired(message=_l("请填写会议决定"))])
    adopted = SelectField(_l("结果"), choices=_choices(("yes", _l("通过")), ("no", _l("不通过"))))


class ProjectForm(Form):
    """Start the project that carries out an adopted topic."""

    owner = StringField(_l("项目负责人/单位"), validators=[DataRequired(message=_l("请填写项目负责人"))])
    budget = DecimalField(_l("预算（元）"), places=2, validators=[InputRequired(message=_l("请填写预算"))])
    funding = TextAreaField(_l("资金来源（每行：来源,金额）"), validators=[Optional()])
    milestones = TextAreaField(_l("实施节点（每行一个）"), validators=[Optional()])


class ProgressForm(Form):
    """Report a project's progress, with an optional photo."""

    progress = IntegerField(_l("进度（0–100 %）"), validators=[InputRequired(message=_l("请填写进度"))])
    note = StringField(_l("进展说明"), validators=[Optional()])
    photo = FileField(_l("现场照片（可选）"))


class FinishForm(Form):
    """Finish the project and open the residents' evaluation."""

    closes_at = DateField(_l("评价截止日期"), validators=[DataRequired(message=_l("请填写截止日期"))])


class HomeForm(Form):
    """A resident declares where they live."""

    place = SelectField(_l("我居住的小区/社区"), validate_choice=False)


class LinkForm(Form):
    """Link a case to a topic by its tracking number."""

    tracking_number = StringField(_l("受理编号"), validators=[DataRequired(message=_l("请填写受理编号"))])


class HideForm(Form):
    """Hide a comment (moderation)."""

    reason = StringField(_l("隐藏理由"), validators=[DataRequired(message=_l("请填写隐藏理由"))])
