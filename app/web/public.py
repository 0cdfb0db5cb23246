"""Residents' and operators' pages: intake, the private status page, lookup."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_wtf import FlaskForm
from sqlalchemy import select

from app.auth import roles_required, signed_in_user
from app.dispatch import queue_routing
from app.extensions import db, limiter
from app.i18n import message_of
from app.photos import attach, photo_list, read_photos
from app.ratelimit import form_key, limit_from_config
from app.security import public_url
from app.web.forms import IntakeForm, LookupForm
from core.catalogue import active_categories
from core.db import utcnow
from core.models import Role, Unit
from core.units import children_of
from governance.rules import STAGE_LABELS, Stage
from governance.services import topics_of_case
from routing.access import can_view
from routing.duplicates import add_me_too, possible_duplicates
from routing.intake import (
    IdempotencyConflict,
    IntakeRejected,
    Submission,
    case_token,
    category_by_code,
    check_token,
    find_case,
    normalise_phone,
    place_by_code,
)
from routing.intake import submit as submit_case
from routing.intake import validate as validate_submission
from routing.models import Case
from routing.narrative import describe

bp = Blueprint("web", __name__)


def token_key() -> bytes:
    """Key of the private status tokens (derived from the instance secret)."""
    return ("case-token:" + current_app.config["SECRET_KEY"]).encode()


def _unit(code: str | None) -> Unit | None:
    return db.session.scalar(select(Unit).where(Unit.code == code)) if code else None


def _fill_choices(form: IntakeForm) -> None:
    """Options for the selects; street and community lists follow what is chosen (works without JS too)."""
    form.category.choices = [("", _("请选择诉求类别"))] + [
        (c.code, f"{c.group} · {c.name}" if c.group else c.name) for c in active_categories(db.session)
    ]
    form.district.choices = [("", _("请选择区"))] + [(u.code, u.name) for u in children_of(db.session, None)]
    district = _unit(form.district.data)
    street = _unit(form.street.data)
    streets = children_of(db.session, district) if district else []
    form.street.choices = [("", _("请选择街道"))] + [(u.code, u.name) for u in streets]
    communities = children_of(db.session, street) if street and street in streets else []
    form.community.choices = [("", _("请选择社区"))] + [(u.code, u.name) for u in communities]


def duplicates_for(
    category: str, community: str, description: str, exclude_id: int | None = None
) -> list[Any]:
    """Possible duplicates of a request being typed (open cases, same community and category codes)."""
    found_category = category_by_code(db.session, category)
    place = place_by_code(db.session, community)
    return duplicates_by_ids(
        found_category.id if found_category else None,
        place.community_id if place and place.is_community else None,
        description,
        exclude_id,
    )


def duplicates_by_ids(
    category_id: int | None, community_id: int | None, description: str, exclude_id: int | None = None
) -> list[Any]:
    """Possible duplicates among the open cases of this category and community (a stored case's ids)."""
    return possible_duplicates(
        db.session,
        category_id=category_id,
        community_id=community_id,
        description=description,
        now=utcnow(),
        window_days=int(current_app.config["DUPLICATE_WINDOW_DAYS"]),
        exclude_id=exclude_id,
    )


def _intake(channel: str, template: str) -> Any:
    form = IntakeForm()
    _fill_choices(form)
    if not form.idempotency_key.data:
        form.idempotency_key.data = uuid.uuid4().hex
    context: dict[str, Any] = {"channel": channel, "map": map_settings()}
    if form.validate_on_submit():
        images, problems = read_photos(request.files.getlist(form.photos.name))
        user = signed_in_user()
        data = Submission(
            category=form.category.data or "",
            district=form.district.data or None,
            street=form.street.data or None,
            community=form.community.data or "",
            address=form.address.data or "",
            description=form.description.data or "",
            contact_name=form.contact_name.data or "",
            contact_phone=form.contact_phone.data or "",
            lat=form.lat.data,
            lng=form.lng.data,
            anonymous=bool(form.anonymous.data),
            sms_opt_in=bool(form.sms_opt_in.data),
        )
        if problems:  # nothing stored; every other problem is shown with them
            form.photos.errors = [p.message for p in problems]
            for error in validate_submission(db.session, data)[2]:
                getattr(form, error.field).errors.append(message_of(error))
            return render_template(template, form=form, **context), 422
        if not form.duplicates_seen.data and not validate_submission(db.session, data)[2]:
            duplicates = duplicates_for(data.category, data.community, data.description)
            if duplicates:
                # Shown once before storing anything (the page without JS; intake.js asks before submitting).
                form.duplicates_seen.data = "1"
                context.update(duplicates=duplicates, photos_dropped=bool(images))
                return render_template(template, form=form, **context)
        try:
            result = submit_case(
                db.session,
                data,
                channel=channel,
                token_key=token_key(),
                resident=user if user is not None and user.role == Role.resident else None,
                operator=user if channel == "phone" else None,
                idempotency_key=form.idempotency_key.data,
            )
        except IntakeRejected as rejected:
            db.session.rollback()
            for error in rejected.errors:
                getattr(form, error.field).errors.append(message_of(error))
        except IdempotencyConflict:
            db.session.rollback()
            flash(_("该表单已提交过，请刷新页面后重新填写"))
        else:
            if result.created and images:
                attach(db.session, result.case, images, "intake")
            case_id, created, waiting = result.case.id, result.created, result.needs_routing
            db.session.commit()
            if waiting:
                queue_routing(case_id, created)
            return redirect(
                url_for("web.submitted", tracking_number=result.case.tracking_number, k=result.token)
            )
    if channel == "phone":  # the caller may give a landline; the form says so
        form.contact_phone.label.text = _("联系电话")
        form.contact_phone.render_kw = {
            **(form.contact_phone.render_kw or {}),
            "placeholder": _("手机号或固话，如 027-88886666"),
        }
    return render_template(template, form=form, **context)


def map_settings() -> dict[str, Any]:
    """What the map picker needs: tile URL (may be empty) and the point it opens at."""
    lat, _sep, lng = str(current_app.config["MAP_CENTER"]).partition(",")
    return {"tiles": current_app.config["MAP_TILE_URL"] or "", "lat": lat.strip(), "lng": lng.strip()}


@bp.route("/")
def home() -> Any:
    """Landing page: submit, follow, sign in."""
    return render_template("home.html", lookup=LookupForm())


@bp.route("/requests/new", methods=["GET", "POST"])
@limiter.limit(limit_from_config("INTAKE_LIMIT"), scope="intake", methods=["POST"])
def new_request() -> Any:
    """Resident intake form (no account needed)."""
    return _intake("web", "intake.html")


@bp.route("/hotline/new", methods=["GET", "POST"])
@roles_required(Role.operator, Role.admin)
def hotline_request() -> Any:
    """Operator intake on a caller's behalf, recorded as channel "phone"."""
    return _intake("phone", "hotline_intake.html")


@bp.route("/requests/<tracking_number>/submitted")
def submitted(tracking_number: str) -> Any:
    """Success page: tracking number and the private link."""
    case = find_case(db.session, tracking_number)
    token = request.args.get("k")
    if case is None or not check_token(token_key(), case.tracking_number, token):
        abort(404)
    link = public_url("web.status", tracking_number=case.tracking_number, k=token)
    return render_template("submitted.html", case=case, link=link)


@bp.route("/status/<tracking_number>")
def status(tracking_number: str) -> Any:
    """The private status page with the case's timeline (token, owner or staff)."""
    case = find_case(db.session, tracking_number)
    if case is None:
        abort(404)
    user = signed_in_user()
    if not (check_token(token_key(), case.tracking_number, request.args.get("k")) or can_view(user, case)):
        abort(404)  # not 403: do not confirm that a tracking number exists
    steps = [(event, describe(event, for_resident=True)) for event in case.events]
    topics = [(t, STAGE_LABELS[Stage(t.stage)]) for t in topics_of_case(db.session, case)]  # co-governance
    photos = photo_list(case, request.args.get("k"))
    return render_template("status.html", case=case, steps=steps, topics=topics, photos=photos)


@bp.route("/requests/<tracking_number>/me-too", methods=["POST"])
@limiter.limit(limit_from_config("INTAKE_LIMIT"), scope="me-too", methods=["POST"])
def me_too(tracking_number: str) -> Any:
    """我也遇到了: count one more resident on an open case (once per browser) and show its progress."""
    case = find_case(db.session, tracking_number)
    if case is None or not FlaskForm().validate_on_submit():
        abort(404)
    followed = list(session.get("me_too", []))
    if case.tracking_number not in followed and add_me_too(db.session, case):
        db.session.commit()
        session["me_too"] = [*followed, case.tracking_number][-50:]
    return render_template("me_too.html", case=case)


@bp.route("/lookup", methods=["POST"])
@limiter.limit(
    limit_from_config("LOOKUP_LIMIT_NUMBER"), key_func=form_key("tracking_number"), scope="lookup-number"
)
@limiter.limit(limit_from_config("LOOKUP_LIMIT_ADDRESS"), scope="lookup-address")
def lookup() -> Any:
    """Recover the private link with the tracking number and the phone number given at intake."""
    form = LookupForm()
    if form.validate_on_submit():
        case = find_case(db.session, form.tracking_number.data or "")
        if case is not None and case.contact_phone == normalise_phone(form.contact_phone.data or ""):
            return redirect(
                url_for(
                    "web.status",
                    tracking_number=case.tracking_number,
                    k=case_token(token_key(), case.tracking_number),
                )
            )
    flash(_("未找到与该受理编号和手机号码匹配的诉求"))
    return redirect(url_for("web.home"))


@bp.route("/my/requests")
@roles_required(Role.resident)
def my_requests() -> Any:
    """A signed-in resident's own requests."""
    user = signed_in_user()
    assert user is not None
    cases = db.session.scalars(
        select(Case).where(Case.resident_id == user.id).order_by(Case.created_at.desc()).limit(200)
    ).all()
    return render_template("my_requests.html", cases=cases)
