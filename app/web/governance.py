"""Co-governance pages (phone-first): a community's topics and their step, the vote, the project, the
evaluation; residents raise, comment, vote and rate; community staff move topics through the five steps,
moderate, verify residents' homes and link cases."""

from __future__ import annotations

import uuid
from datetime import datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, send_file, url_for
from flask_babel import gettext as _
from sqlalchemy import select
from wtforms.fields.choices import SelectChoice

from app.auth import roles_required, signed_in_user
from app.extensions import db
from app.i18n import TranslatedLabels, message_of
from app.web import governance_forms as forms
from app.web.present import register_nav
from core.db import utcnow
from core.i18n import N_
from core.models import Level, Role, Unit, User
from core.quarter import beijing_to_utc
from governance import clusters, rules
from governance import services as gov
from governance.models import Attachment, Comment, Residency, Topic
from governance.rules import CHOICE_LABELS, OUTCOME_LABELS, STAGE_LABELS, GovernanceError, Stage
from routing.intake import find_case
from routing.models import Case

bp = Blueprint("governance", __name__)
STAFF = (Role.handler, Role.dispatcher, Role.admin)
PUBLIC_FILES = frozenset({"comment", "project"})  # attachments shown on public topic pages


def _staff_unit(user: User) -> Unit | None:
    """The unit whose subtree a staff member sees (None: the whole city, for admins)."""
    return None if user.role is Role.admin else user.unit


def _places(root: Unit | None = None) -> list[SelectChoice]:
    """Communities and their compounds (of ``root``'s subtree), as select choices."""
    stmt = select(Unit).where(Unit.level.in_([Level.community, Level.compound]), Unit.active.is_(True))
    if root is not None:
        stmt = stmt.where(Unit.path.startswith(root.path, autoescape=True))
    units = db.session.scalars(stmt.order_by(Unit.path)).all()
    return [SelectChoice(u.code, ("　└ " if u.level == Level.compound else "") + u.name) for u in units]


def _unit(code: str | None) -> Unit | None:
    return db.session.scalar(select(Unit).where(Unit.code == code)) if code else None


def _topic(topic_id: int) -> Topic:
    topic = db.session.get(Topic, topic_id)
    if topic is None:
        abort(404)
    return topic


def _save(upload: Any, owner_kind: str, owner_id: int, user: User | None) -> Attachment | None:
    """Store an uploaded evidence file under the instance folder (after the record it belongs to is valid)."""
    if upload is None or not getattr(upload, "filename", ""):
        return None
    folder = Path(current_app.instance_path) / "governance"
    folder.mkdir(parents=True, exist_ok=True)
    stored = uuid.uuid4().hex
    upload.save(folder / stored)
    attachment = Attachment(
        owner_kind=owner_kind,
        owner_id=owner_id,
        stored_name=stored,
        filename=Path(upload.filename).name[:200],
        size=(folder / stored).stat().st_size,
        uploaded_by_id=user.id if user else None,
    )
    db.session.add(attachment)
    return attachment


def attachments(owner_kind: str, owner_id: int) -> list[Attachment]:
    """The files of one record."""
    stmt = select(Attachment).where(Attachment.owner_kind == owner_kind, Attachment.owner_id == owner_id)
    return list(db.session.scalars(stmt.order_by(Attachment.id)))


def _refused(error: GovernanceError, form: Any = None) -> None:
    db.session.rollback()
    field = getattr(form, error.field, None) if form is not None and error.field else None
    if field is not None:
        field.errors = [*field.errors, message_of(error)]
    flash(message_of(error))


# --- public and residents --------------------------------------------------------------------


@bp.route("/topics")
def topics() -> Any:
    """A community's (or the city's) topics and their step; filters community and stage."""
    community = _unit(request.args.get("community"))
    stage = request.args.get("stage") or None
    if stage not in {s.value for s in Stage} | {None}:
        stage = None
    found = gov.topics_in(db.session, community, stage)
    return render_template(
        "governance/topics.html",
        topics=found,
        community=community,
        stage=stage,
        STAGES=list(Stage),
        STAGE_LABELS=TranslatedLabels(STAGE_LABELS),
        places=_places(),
    )


@bp.route("/topics/<int:topic_id>")
def topic(topic_id: int) -> Any:
    """One topic: its step, discussion, vote, project and evaluation, with what the viewer may do."""
    item = _topic(topic_id)
    user = signed_in_user()
    actor = gov.actor_of(db.session, user) if user else None
    snap = gov.snapshot(item)
    now = utcnow()
    allowed = rules.allowed_actions(snap, actor, now) if actor is not None and user is not None else []
    comments = [
        c for c in db.session.scalars(select(Comment).where(Comment.topic_id == item.id).order_by(Comment.id))
    ]
    staff = user is not None and user.role in STAFF and actor is not None and _may_edit(actor, item)
    visible = [c for c in comments if staff or not c.hidden]
    voted = None
    if user is not None and item.vote is not None:
        voted = db.session.scalar(
            select(gov.Ballot.choice).where(
                gov.Ballot.vote_id == item.vote.id, gov.Ballot.voter_id == user.id
            )
        )
    resident_can_vote = resident_can_rate = False
    if user is not None and user.role is Role.resident and actor is not None:
        try:
            rules.check_ballot(snap, actor, now, voted is not None)
            resident_can_vote = True
        except GovernanceError:
            pass
        rated = any(r.resident_id == user.id for r in item.ratings)
        try:
            rules.check_rating(snap, actor, now, rated, 5)
            resident_can_rate = True
        except GovernanceError:
            pass
    return render_template(
        "governance/topic.html",
        topic=item,
        snap=snap,
        allowed=allowed,
        staff=staff,
        comments=visible,
        files={c.id: attachments("comment", c.id) for c in visible},
        photos=attachments("project", item.project.id) if item.project else [],
        cases=gov.linked_cases(db.session, item),
        evaluation=gov.evaluation(item),
        voted=voted,
        can_vote=resident_can_vote,
        can_rate=resident_can_rate,
        can_comment=user is not None and actor is not None and rules.may_comment(snap, actor),
        home=gov.verified_home(db.session, user),
        STAGES=list(Stage),
        STAGE_LABELS=TranslatedLabels(STAGE_LABELS),
        OUTCOME_LABELS=TranslatedLabels(OUTCOME_LABELS),
        CHOICE_LABELS=TranslatedLabels(CHOICE_LABELS),
        Action=rules.Action,
        STEP_LABELS={
            "raise": _("提出议题"),
            **{a.value: _(label) for a, label in rules.ACTION_LABELS.items()},
        },
        comment_form=forms.CommentForm(),
        ballot_form=forms.BallotForm(),
        rating_form=forms.RatingForm(),
        vote_form=forms.OpenVoteForm(quorum=max(1, gov.eligible_voters(db.session, item.place) // 2)),
        decision_form=forms.DecisionForm(),
        project_form=forms.ProjectForm(),
        progress_form=forms.ProgressForm(progress=item.project.progress if item.project else 0),
        finish_form=forms.FinishForm(),
        link_form=forms.LinkForm(),
        hide_form=forms.HideForm(),
        eligible=gov.eligible_voters(db.session, item.place),
    )


def _may_edit(actor: rules.Actor, item: Topic) -> bool:
    try:
        rules.check_staff(actor, item.community.path)
    except GovernanceError:
        return False
    return True


@bp.route("/topics/new", methods=["GET", "POST"])
@roles_required(Role.resident, *STAFF)
def new_topic() -> Any:
    """Raise a topic: a resident online, or staff on residents' behalf."""
    user = signed_in_user()
    assert user is not None
    form = forms.TopicForm()
    root = None if user.role is Role.resident else _staff_unit(user)
    form.place.choices = [SelectChoice("", _("请选择")), *_places(root)]
    if request.method == "GET" and user.role is Role.resident:
        home = gov.verified_home(db.session, user)
        if home is not None:
            form.place.data = home.code
    if form.validate_on_submit():
        place = _unit(form.place.data)
        if place is None:
            form.place.errors = [*form.place.errors, _("请选择所在小区或社区")]
        else:
            numbers = [n.strip() for n in (form.cases.data or "").replace("，", ",").split(",") if n.strip()]
            found = [find_case(db.session, n) for n in numbers]
            if any(c is None for c in found):
                form.cases.errors = [*form.cases.errors, _("受理编号不存在")]
            else:
                try:
                    item = gov.raise_topic(
                        db.session,
                        user,
                        place,
                        form.title.data or "",
                        form.description.data or "",
                        case_ids=[c.id for c in found if c is not None],
                    )
                except GovernanceError as error:
                    _refused(error, form)
                else:
                    db.session.commit()
                    flash(_("议题已提出，社区将尽快组织协商"))
                    return redirect(url_for("governance.topic", topic_id=item.id))
    return render_template("governance/new_topic.html", form=form)


@bp.route("/topics/<int:topic_id>/comment", methods=["POST"])
@roles_required(Role.resident, *STAFF)
def comment(topic_id: int) -> Any:
    """Post a comment (or minutes, for staff) with an optional attachment."""
    item = _topic(topic_id)
    user = signed_in_user()
    assert user is not None
    form = forms.CommentForm()
    if form.validate_on_submit():
        try:
            posted = gov.add_comment(
                db.session, item.id, user, form.body.data or "", form.kind.data or "comment"
            )
        except GovernanceError as error:
            _refused(error)
        else:
            _save(form.attachment.data, "comment", posted.id, user)
            db.session.commit()
            flash(_("已发表"))
    else:
        flash(_("请填写内容"))
    return redirect(url_for("governance.topic", topic_id=topic_id, _anchor="discussion"))


@bp.route("/topics/<int:topic_id>/vote", methods=["POST"])
@roles_required(Role.resident)
def vote(topic_id: int) -> Any:
    """Cast a ballot (verified residents of the place, once, before the deadline)."""
    _topic(topic_id)
    user = signed_in_user()
    assert user is not None
    form = forms.BallotForm()
    if form.validate_on_submit():
        try:
            gov.cast_ballot(db.session, topic_id, user, form.choice.data or "")
        except GovernanceError as error:
            _refused(error)
        else:
            db.session.commit()
            flash(_("投票成功，结果将在表决截止后公布"))
    return redirect(url_for("governance.topic", topic_id=topic_id, _anchor="vote"))


@bp.route("/topics/<int:topic_id>/rate", methods=["POST"])
@roles_required(Role.resident)
def rate(topic_id: int) -> Any:
    """Rate the carried-out topic (verified residents of the place, once)."""
    _topic(topic_id)
    user = signed_in_user()
    assert user is not None
    form = forms.RatingForm()
    if form.validate_on_submit():
        try:
            gov.rate(db.session, topic_id, user, int(form.score.data or 0), form.comment.data or "")
        except (GovernanceError, ValueError) as error:
            _refused(
                error if isinstance(error, GovernanceError) else GovernanceError("bad_score", N_("评分无效"))
            )
        else:
            db.session.commit()
            flash(_("感谢您的评价"))
    return redirect(url_for("governance.topic", topic_id=topic_id, _anchor="evaluate"))


@bp.route("/my/home", methods=["GET", "POST"])
@roles_required(Role.resident)
def my_home() -> Any:
    """A resident declares the compound or community they live in; its staff confirm it."""
    user = signed_in_user()
    assert user is not None
    form = forms.HomeForm()
    form.place.choices = [SelectChoice("", _("请选择")), *_places()]
    residency = db.session.scalar(select(Residency).where(Residency.user_id == user.id))
    if request.method == "GET" and residency is not None:
        form.place.data = residency.unit.code
    if form.validate_on_submit():
        place = _unit(form.place.data)
        if place is None:
            form.place.errors = [*form.place.errors, _("请选择居住的小区或社区")]
        else:
            try:
                residency = gov.declare_home(db.session, user, place)
            except GovernanceError as error:
                _refused(error, form)
            else:
                db.session.commit()
                flash(_("已登记，社区核实后即可参与表决和评价"))
                return redirect(url_for("governance.my_home"))
    return render_template("governance/my_home.html", form=form, residency=residency)


# --- community staff -------------------------------------------------------------------------


@bp.route("/governance")
@roles_required(*STAFF)
def manage() -> Any:
    """Staff: the topics of their subtree, the residents waiting for verification, suggested clusters."""
    user = signed_in_user()
    assert user is not None
    root = _staff_unit(user)
    stmt = select(Residency).join(Unit, Unit.id == Residency.unit_id).where(Residency.verified_at.is_(None))
    if root is not None:
        stmt = stmt.where(Unit.path.startswith(root.path, autoescape=True))
    pending = db.session.scalars(stmt.order_by(Residency.id).limit(200)).all()
    suggestions = clusters.suggest(db.session, root, since=utcnow() - timedelta(days=180))
    return render_template(
        "governance/manage.html",
        topics=gov.topics_in(db.session, root),
        pending=pending,
        suggestions=suggestions,
        STAGE_LABELS=TranslatedLabels(STAGE_LABELS),
    )


@bp.route("/governance/residents/<int:residency_id>/verify", methods=["POST"])
@roles_required(*STAFF)
def verify(residency_id: int) -> Any:
    """Confirm a resident's declared home."""
    user = signed_in_user()
    assert user is not None
    if db.session.get(Residency, residency_id) is None:
        abort(404)
    try:
        gov.verify_home(db.session, residency_id, user)
    except GovernanceError as error:
        if error.code == "out_of_scope":
            db.session.rollback()
            abort(404)
        _refused(error)
    else:
        db.session.commit()
        flash(_("已核实"))
    return redirect(url_for("governance.manage"))


@bp.route("/governance/clusters/promote", methods=["POST"])
@roles_required(*STAFF)
def promote() -> Any:
    """Raise a topic from a suggested cluster of similar cases (the cases are linked to it)."""
    user = signed_in_user()
    assert user is not None
    ids = [int(v) for v in request.form.getlist("case") if v.isdigit()][:200]
    cases = [c for c in (db.session.get(Case, i) for i in ids) if c is not None]
    if not cases:
        flash(_("请选择要合并为议题的诉求"))
        return redirect(url_for("governance.manage"))
    title = (request.form.get("title") or "").strip() or _("居民反映集中的问题")
    description = "\n".join(f"{c.tracking_number}：{c.description[:120]}" for c in cases)
    try:
        item = gov.raise_topic(
            db.session, user, cases[0].community, title, description, "cluster", [c.id for c in cases]
        )
    except GovernanceError as error:
        if error.code == "out_of_scope":
            db.session.rollback()
            abort(404)
        _refused(error)
        return redirect(url_for("governance.manage"))
    db.session.commit()
    return redirect(url_for("governance.topic", topic_id=item.id))


def _staff_topic(topic_id: int) -> tuple[Topic, User]:
    """The topic, if the signed-in staff member may edit it (else 404: other communities' records)."""
    item = _topic(topic_id)
    user = signed_in_user()
    assert user is not None
    if not _may_edit(gov.actor_of(db.session, user), item):
        abort(404)
    return item, user


def _command(action: str, item: Topic) -> rules.Command | None:
    """The command for a staff action from the posted form, or None when the form is invalid."""
    if action == rules.Action.start_discussion:
        return rules.StartDiscussion(request.form.get("note", ""))
    if action == rules.Action.open_vote:
        vote_form = forms.OpenVoteForm()
        if not vote_form.validate_on_submit() or vote_form.closes_at.data is None:
            return None
        return rules.OpenVote(
            closes_at=beijing_to_utc(vote_form.closes_at.data),
            quorum=int(vote_form.quorum.data or 0),
            majority=float(vote_form.majority.data or 0.5),
            eligible=gov.eligible_voters(db.session, item.place),
        )
    if action == rules.Action.record_decision:
        decision = forms.DecisionForm()
        if not decision.validate_on_submit():
            return None
        return rules.RecordDecision(decision.minutes.data or "", decision.adopted.data == "yes")
    if action == rules.Action.start_project:
        project = forms.ProjectForm()
        if not project.validate_on_submit():
            return None
        funding = []
        for line in (project.funding.data or "").splitlines():
            if not line.strip():
                continue
            source, _sep, amount = line.replace("，", ",").rpartition(",")
            try:
                funding.append((source.strip(), float(Decimal(amount.strip()))))
            except ArithmeticError:
                raise GovernanceError("bad_funding", N_("资金来源格式应为：来源,金额"), "funding") from None
        milestones = tuple(m for m in (project.milestones.data or "").splitlines() if m.strip())
        return rules.StartProject(
            project.owner.data or "", float(project.budget.data or 0), tuple(funding), milestones
        )
    if action == rules.Action.report_progress:
        progress = forms.ProgressForm()
        if not progress.validate_on_submit():
            return None
        return rules.ReportProgress(
            int(progress.progress.data if progress.progress.data is not None else -1),
            progress.note.data or "",
        )
    if action == rules.Action.finish_project:
        finish = forms.FinishForm()
        if not finish.validate_on_submit() or finish.closes_at.data is None:
            return None
        return rules.FinishProject(beijing_to_utc(datetime.combine(finish.closes_at.data, time(23, 59))))
    if action == rules.Action.close_evaluation:
        return rules.CloseEvaluation(request.form.get("note", ""))
    return None


@bp.route("/topics/<int:topic_id>/act/<action>", methods=["POST"])
@roles_required(*STAFF)
def act(topic_id: int, action: str) -> Any:
    """A staff step of the five-step method."""
    item, user = _staff_topic(topic_id)
    try:
        if action == rules.Action.close_vote:
            gov.close_vote(db.session, item.id, user)
        else:
            command = _command(action, item)
            if command is None:
                flash(_("请检查填写的内容"))
                return redirect(url_for("governance.topic", topic_id=topic_id))
            gov.act(db.session, item.id, user, command)
            if action == rules.Action.report_progress and item.project is not None:
                _save(forms.ProgressForm().photo.data, "project", item.project.id, user)
    except GovernanceError as error:
        _refused(error)
    else:
        db.session.commit()
        flash(_("已保存"))
    return redirect(url_for("governance.topic", topic_id=topic_id))


@bp.route("/topics/<int:topic_id>/link", methods=["POST"])
@roles_required(*STAFF)
def link(topic_id: int) -> Any:
    """Link a case of the community to the topic by its tracking number."""
    item, user = _staff_topic(topic_id)
    form = forms.LinkForm()
    case = find_case(db.session, form.tracking_number.data or "") if form.validate_on_submit() else None
    if case is None:
        flash(_("受理编号不存在"))
    else:
        try:
            gov.link_case(db.session, item, case.id, user)
        except GovernanceError as error:
            _refused(error)
        else:
            db.session.commit()
            flash(_("已关联，居民将收到议事进展通知"))
    return redirect(url_for("governance.topic", topic_id=topic_id))


@bp.route("/topics/<int:topic_id>/comments/<int:comment_id>/hide", methods=["POST"])
@roles_required(*STAFF)
def hide(topic_id: int, comment_id: int) -> Any:
    """Moderation: hide a comment with a reason."""
    _staff_topic(topic_id)
    user = signed_in_user()
    assert user is not None
    form = forms.HideForm()
    try:
        gov.hide_comment(db.session, comment_id, user, form.reason.data or "")
    except GovernanceError as error:
        _refused(error)
    else:
        db.session.commit()
        flash(_("已隐藏"))
    return redirect(url_for("governance.topic", topic_id=topic_id, _anchor="discussion"))


@bp.route("/governance/files/<int:file_id>")
def download(file_id: int) -> Any:
    """An attachment of a public topic record (comments, project photos); a ledger's evidence only for
    staff whose subtree holds that row, admins and evaluators."""
    attachment = db.session.get(Attachment, file_id)
    if attachment is None:
        abort(404)
    user = signed_in_user()
    from app.web.ledgers import may_read_evidence  # ledgers' views import this module
    from governance.ledgers import LEDGERS

    if attachment.owner_kind in LEDGERS:
        if not may_read_evidence(user, attachment.owner_kind, attachment.owner_id):
            abort(404)  # another community's evidence: as if it did not exist
    elif attachment.owner_kind not in PUBLIC_FILES and (
        user is None or user.role not in (*STAFF, Role.evaluator)
    ):
        abort(404)
    path = Path(current_app.instance_path) / "governance" / attachment.stored_name
    if not path.exists():
        abort(404)
    return send_file(path, as_attachment=True, download_name=attachment.filename)


register_nav("governance.topics", N_("社区议事"), Role.resident)
register_nav("governance.my_home", N_("我的小区"), Role.resident)
register_nav("governance.manage", N_("议事协商"), *STAFF)
