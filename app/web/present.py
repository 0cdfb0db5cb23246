"""Template helpers: labels, masking by viewer, dates in local time."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Flask
from flask_babel import gettext as _

from app.audit import contact_shown
from app.auth import signed_in_user
from app.i18n import TranslatedLabels
from core.i18n import N_
from core.models import LEVEL_LABELS, ROLE_LABELS, URGENCY_LABELS, Level, Role
from core.privacy import mask_name, mask_phone
from core.quarter import to_beijing
from routing import lifecycle
from routing.access import can_see_contact
from routing.intake import CHANNEL_LABELS
from routing.models import Case

# One table of case-state labels: the lifecycle's (keyed by the plain string templates and the API use).
STATE_LABELS = {state.value: label for state, label in lifecycle.STATE_LABELS.items()}


def local(moment: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """Format a stored UTC time as Beijing time."""
    return to_beijing(moment).strftime(fmt) if moment else ""


def contact_name(case: Case) -> str:
    """The contact's name as the current viewer may see it (a full name is audited)."""
    if can_see_contact(signed_in_user(), case):
        contact_shown(case.tracking_number)
        return case.contact_name + (_("（要求不公开姓名）") if case.anonymous else "")
    return _("匿名") if case.anonymous else mask_name(case.contact_name)


def contact_phone(case: Case) -> str:
    """The contact's phone as the current viewer may see it (a full number is audited)."""
    if can_see_contact(signed_in_user(), case):
        contact_shown(case.tracking_number)
        return case.contact_phone
    return mask_phone(case.contact_phone)


_DONE_STATES = frozenset(
    {lifecycle.State.resolved.value, lifecycle.State.closed.value, lifecycle.State.merged.value}
)


def case_status(case: Case) -> str:
    """The state as people read it: a resolved case says whether it has been rated (已评价/待评价)."""
    if case.state == lifecycle.State.resolved.value:
        return _("已办结，已评价") if case.satisfaction else _("已办结，待评价")
    return _(STATE_LABELS[case.state]) if case.state in STATE_LABELS else case.state


def shows_deadline(case: Case) -> bool:
    """Whether the handling deadline still means something (not once the case is resolved or archived)."""
    return case.deadline is not None and case.state not in _DONE_STATES


def init_app(app: Flask) -> None:
    """Expose the helpers to templates."""

    @app.context_processor
    def helpers() -> dict[str, Any]:
        return {
            # Domain label tables (marked with N_), translated on lookup.
            "STATE_LABELS": TranslatedLabels(STATE_LABELS),
            "ROLE_LABELS": TranslatedLabels(ROLE_LABELS),
            "LEVEL_LABELS": TranslatedLabels(LEVEL_LABELS),
            "URGENCY_LABELS": TranslatedLabels(URGENCY_LABELS),
            "CHANNEL_LABELS": TranslatedLabels(CHANNEL_LABELS),
            "Level": Level,
            "local": local,
            "contact_name": contact_name,
            "contact_phone": contact_phone,
            "case_status": case_status,
            "shows_deadline": shows_deadline,
            "me": signed_in_user(),
            "nav_links": nav_links,
        }


# Navigation per role; blueprints add their entries with ``register_nav`` when they register.
NAV: dict[Role, list[tuple[str, str]]] = {role: [] for role in Role}


def register_nav(endpoint: str, label: str, *roles: Role) -> None:
    """Add a navigation link for the given roles (once)."""
    for role in roles:
        if (endpoint, label) not in NAV[role]:
            NAV[role].append((endpoint, label))


def nav_links(user: Any) -> list[tuple[str, str]]:
    """The navigation links of a signed-in user's role (labels marked with ``N_``, translated here)."""
    return [(endpoint, _(label)) for endpoint, label in NAV.get(user.role, [])] if user is not None else []


register_nav("web.hotline_request", N_("热线受理"), Role.operator, Role.admin)
register_nav("web.my_requests", N_("我的诉求"), Role.resident)
