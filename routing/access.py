"""Who may see what of a case: the one set of server-side rules every view, API call and service uses."""

from __future__ import annotations

from core.models import Role, Unit, User
from routing.models import Case
from routing.rules import HOTLINE_CENTRE_CODE


def acts_for_city(user: User) -> bool:
    """Whether a dispatcher works for the whole city (at the city itself or the hotline centre)."""
    unit = user.unit
    return (
        user.role == Role.dispatcher
        and unit is not None
        and (unit.parent_id is None or unit.code == HOTLINE_CENTRE_CODE)
    )


def _is_city_level(user: User) -> bool:
    return user.unit is not None and user.unit.parent_id is None


def _within(unit: Unit | None, case: Case) -> bool:
    """Whether the case's place or current unit lies in ``unit``'s subtree."""
    if unit is None:
        return False
    places = [case.community, case.current_unit]
    return any(place is not None and place.path.startswith(unit.path) for place in places)


def in_scope(user: User | None, case: Case) -> bool:
    """Whether the case lies in the user's own subtree (by place or current unit): the cases a unit may
    take as the object or target of an action. Being summoned to a case, or reading across the city
    (operators, evaluators), lets one see it, not act on it."""
    if user is None or user.role in (Role.resident, Role.operator, Role.evaluator):
        return False
    if user.role == Role.admin or acts_for_city(user) or _is_city_level(user):
        return True
    return _within(user.unit, case)


def summoned(user: User, case: Case) -> bool:
    """Whether the user's unit was summoned (吹哨) to this case and has not yet answered for good."""
    return user.unit_id is not None and any(
        s.unit_id == user.unit_id and s.closed_at is None for s in case.summons
    )


def can_view(user: User | None, case: Case) -> bool:
    """Staff see cases of their subtree, at their unit or summoned to; the city and admins see all."""
    if user is None:
        return False
    if user.role == Role.admin:
        return True
    if user.role == Role.resident:
        return case.resident_id == user.id
    if user.role in (Role.operator, Role.evaluator):
        return True  # hotline callbacks and assessment read across the city; contacts stay masked
    if _is_city_level(user) or acts_for_city(user):
        return True
    return (
        _within(user.unit, case)
        or (user.unit_id is not None and user.unit_id == case.current_unit_id)
        or summoned(user, case)
    )


def can_see_contact(user: User | None, case: Case) -> bool:
    """Names and phone numbers: only the handling unit, dispatchers over the case, and admins."""
    if user is None:
        return False
    if user.role == Role.admin:
        return True
    if user.role == Role.dispatcher:
        return _within(user.unit, case) or acts_for_city(user)
    if user.role == Role.handler:
        return user.unit_id is not None and user.unit_id == case.current_unit_id
    return False
