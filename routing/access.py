"""Who may see what of a case: the server-side rules every view and API call goes through."""

from __future__ import annotations

from core.models import Role, Unit, User
from routing.models import Case


def _within(unit: Unit | None, case: Case) -> bool:
    """Whether the case's place or current unit lies in ``unit``'s subtree."""
    if unit is None:
        return False
    places = [case.community, case.current_unit]
    return any(place is not None and place.path.startswith(unit.path) for place in places)


def can_view(user: User | None, case: Case) -> bool:
    """Staff see cases of their subtree or at their unit; the city and admins see all; residents their own."""
    if user is None:
        return False
    if user.role == Role.admin:
        return True
    if user.role == Role.resident:
        return case.resident_id == user.id
    if user.role in (Role.operator, Role.evaluator):
        return True  # hotline callbacks and assessment read across the city; contacts stay masked
    if user.unit is not None and user.unit.parent_id is None:
        return True  # the city level
    return _within(user.unit, case) or (user.unit_id is not None and user.unit_id == case.current_unit_id)


def can_see_contact(user: User | None, case: Case) -> bool:
    """Names and phone numbers: only the handling unit, dispatchers over the case, and admins."""
    if user is None:
        return False
    if user.role == Role.admin:
        return True
    if user.role == Role.dispatcher:
        return _within(user.unit, case) or (user.unit is not None and user.unit.parent_id is None)
    if user.role == Role.handler:
        return user.unit_id is not None and user.unit_id == case.current_unit_id
    return False
