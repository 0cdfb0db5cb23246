"""Permission matrix: every route of ``app.url_map`` × every demo role × a case inside and outside the
role's subtree, against the expectations declared in :data:`EXPECT`.

For each route, every role GETs it (routes with GET); POST routes are sent by every role that may not
use them (and by permitted roles on a case outside their subtree), and must be refused with the declared
status and without a single INSERT, UPDATE or DELETE reaching the database. A route of the app without
a line in :data:`EXPECT` fails :func:`test_every_route_has_a_declared_expectation`, so a new route forces
a decision; a line for a route that no longer exists fails it too.

Adding a route: add one line to :data:`EXPECT`, e.g.::

    "admin.users": Expect(ADMIN),                      # admins only; others 403, anonymous 302 → login
    "ops.healthz": Expect(EVERYONE),                   # public
    "api_v1.thing": Expect(EVALUATORS, denied=404, anonymous=401),
    "workbench.x": Expect(QUEUE, scope="case"),        # and a case outside one's subtree answers 404
    "workbench.y": Expect(DISPATCHERS, scope="case", gate=QUEUE),  # QUEUE opens it, dispatchers act

``may`` is who gets through (``ok``, 200 unless declared); others signed in get ``denied`` (403 unless
declared), anonymous visitors ``anonymous`` (302 to the login page unless declared). With
``scope="case"`` the ``<tracking_number>`` is a case inside each role's subtree, then one outside it
(for roles that have an outside: not admin, operator, evaluator or the city's dispatcher), where
permitted roles get ``outside`` (404: existence is not leaked); ``scope="unit"`` does the same with the
``<code>`` of a unit. URL arguments come from :data:`ARGS`
(add the argument's name there when a route introduces a new one). A table a refused request may
legitimately write (an audit trail, session bookkeeping) goes into :data:`WRITES_ALLOWED` with a reason.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import event, select

from app.extensions import db
from core.models import Role, User
from routing import services
from surveys import services as survey_services
from tests.builders import OTHER_DISTRICT_COMMUNITY, accepted, make_user, user
from tests.conftest import rolled_back_session

ANONYMOUS = "anonymous"
ROLES = (
    ANONYMOUS,
    "resident",
    "operator",
    "dispatcher-city",
    "dispatcher-district",
    "dispatcher-street",
    "handler-community",
    "handler-street",
    "handler-fgj",
    "evaluator",
    "admin",
)
SIGNED_IN = frozenset(ROLES) - {ANONYMOUS}
EVERYONE = frozenset(ROLES)
ADMIN = frozenset({"admin"})
EVALUATORS = frozenset({"evaluator", "admin"})
HOTLINE = frozenset({"operator", "admin"})
RESIDENT = frozenset({"resident"})
DISPATCHERS = frozenset({"dispatcher-city", "dispatcher-district", "dispatcher-street", "admin"})
HANDLERS = frozenset({"handler-community", "handler-street", "handler-fgj"})
QUEUE = DISPATCHERS | HANDLERS | {"operator"}  # the workbench
GOV_STAFF = DISPATCHERS | HANDLERS  # community staff (and the levels above) keep co-governance records
LEDGER_READERS = GOV_STAFF | EVALUATORS
# Roles that see every case of the city (they have no "outside").
CITY_WIDE = frozenset({"admin", "operator", "evaluator", "dispatcher-city"})


@dataclass(frozen=True)
class Expect:
    """Who may use a route, and what everyone else gets."""

    may: frozenset[str]
    denied: int = 403
    anonymous: int = 302
    ok: int = 200
    # "case" / "unit": the route takes a case / a unit code, tried inside and outside the role's subtree
    scope: str | None = None
    outside: int = 404
    # Roles that pass the route's role gate but not its action (default: ``may``): they get ``denied``
    # on a case inside their subtree and ``outside`` on one outside it, like permitted roles.
    gate: frozenset[str] | None = None
    post: bool = True  # False: a POST by those who may not is not sent (e.g. public forms)


EXPECT: dict[str, Expect] = {
    # public pages and the JSON API
    "static": Expect(EVERYONE),
    "web.home": Expect(EVERYONE),
    "i18n.set_language": Expect(
        EVERYONE, ok=302
    ),  # POST only: sets the lang cookie, back to a same-site page
    "web.new_request": Expect(EVERYONE),
    "web.lookup": Expect(EVERYONE, ok=302),  # POST only: back home with a message
    "web.submitted": Expect(frozenset(), denied=404, anonymous=404),  # without its private token
    "auth.login": Expect(EVERYONE),
    "auth.logout": Expect(EVERYONE, ok=302),
    "auth.register": Expect(EVERYONE),
    "auth.totp": Expect(EVERYONE, ok=302),  # no sign-in waiting for its code: back to the login page
    # one's own account (password, TOTP second factor)
    "account.index": Expect(SIGNED_IN),
    "account.password": Expect(SIGNED_IN),
    "account.totp_enable": Expect(SIGNED_IN),
    "account.totp_disable": Expect(SIGNED_IN),
    # a resident's phone verified by an SMS code (joins earlier requests); residents only
    "account.phone_code": Expect(RESIDENT),
    "account.phone_verify": Expect(RESIDENT),
    # 忘记密码: public forms (the same answer for every account); the reset page without a pending
    # request goes back to /login/forgot
    "password.forgot": Expect(EVERYONE, post=False),
    "password.reset": Expect(EVERYONE, ok=302, post=False),
    "surveys.respond": Expect(frozenset(), denied=404, anonymous=404),  # an unknown link code
    "api_v1.categories": Expect(EVERYONE),
    "api_v1.units": Expect(EVERYONE),
    "api_v1.create_request": Expect(EVERYONE, ok=415),  # POST only (JSON)
    "api_v1.duplicates": Expect(EVERYONE),  # tracking numbers and state of similar open cases only
    "api_v1.suggest_place": Expect(EVERYONE, ok=422),  # without lat/lng
    "api_v1.addresses": Expect(EVERYONE),  # without a community: []
    "web.me_too": Expect(EVERYONE),  # POST only: counts once per browser on an open case
    "photos.photo": Expect(frozenset(), denied=404, anonymous=404, scope="case"),  # no such photo key
    # Open311: discovery and services are public; requests and tokens need a partner api_key (403)
    "api_v1.openapi_document": Expect(EVERYONE),
    "api_v1.docs": Expect(EVERYONE),
    "open311.discovery": Expect(EVERYONE),
    "open311.services": Expect(EVERYONE),
    "open311.service_definition": Expect(EVERYONE),
    "open311.create_request": Expect(frozenset(), denied=403, anonymous=403),
    "open311.list_requests": Expect(frozenset(), denied=403, anonymous=403),
    "open311.get_request": Expect(frozenset(), denied=403, anonymous=403),
    "open311.token": Expect(frozenset(), denied=403, anonymous=403),
    # operations (app/ops.py): /metrics answers only loopback clients without forwarding headers or a
    # METRICS_TOKEN bearer (tests/web/test_ops.py), so 404 here whatever the role; /readyz says 503
    # because the test schema is built without Alembic (not at the migrations' head)
    "ops.healthz": Expect(EVERYONE),
    "ops.readyz": Expect(EVERYONE, ok=503),  # the test schema comes from create_all: "no migrations"
    "ops.metrics": Expect(frozenset(), denied=404, anonymous=404),  # the clients are not on loopback
    # a case: its owner, its private link, or staff who may see it
    "web.status": Expect(SIGNED_IN - {"resident"} | RESIDENT, denied=404, anonymous=404, scope="case"),
    "api_v1.get_request": Expect(SIGNED_IN, denied=401, anonymous=401, scope="case", outside=401),
    "workbench.resident_callback": Expect(RESIDENT, denied=404, anonymous=404, scope="case"),  # the owner
    # residents
    "web.my_requests": Expect(RESIDENT),
    # the hotline
    "web.hotline_request": Expect(HOTLINE),
    # the workbench; ``act`` is tried with 督办 (a dispatcher's action)
    "workbench.queue": Expect(QUEUE),
    "workbench.read_notices": Expect(QUEUE, ok=302),
    "workbench.case_page": Expect(QUEUE, scope="case"),
    "workbench.act": Expect(DISPATCHERS, scope="case", gate=QUEUE),
    # evaluators: surveys and assessment
    "surveys.index": Expect(EVALUATORS),
    "surveys.editor": Expect(EVALUATORS),
    "surveys.add_section": Expect(EVALUATORS),
    "surveys.add_question": Expect(EVALUATORS),
    "surveys.edit_question": Expect(EVALUATORS, ok=404),  # no question in the fixture's survey
    "surveys.delete_question": Expect(EVALUATORS, ok=404),
    "surveys.move_question": Expect(EVALUATORS, ok=404),
    "surveys.preview": Expect(EVALUATORS),
    "surveys.import_xlsform": Expect(EVALUATORS),
    "surveys.margins": Expect(EVALUATORS),
    "surveys.change_status": Expect(EVALUATORS),
    "surveys.links": Expect(EVALUATORS),
    "surveys.community_link": Expect(EVALUATORS, scope="unit"),
    "surveys.paper": Expect(EVALUATORS),
    "surveys.rejected_csv": Expect(EVALUATORS, ok=404),  # no upload in the fixture
    "surveys.upload": Expect(EVALUATORS, ok=404),
    "surveys.review": Expect(EVALUATORS),
    "surveys.progress": Expect(EVALUATORS),
    "surveys.results": Expect(EVALUATORS),
    "surveys.export": Expect(EVALUATORS),
    "assessment.dashboard": Expect(EVALUATORS),
    "assessment.run_quarter": Expect(EVALUATORS),
    "assessment.publish": Expect(EVALUATORS),
    "assessment.unit": Expect(
        EVALUATORS, scope="unit", ok=404
    ),  # no scoring run for the quarter in the fixture
    "assessment.why": Expect(EVALUATORS, scope="unit", ok=404),
    "assessment.systems": Expect(EVALUATORS),
    "assessment.system": Expect(EVALUATORS, ok=404),  # no indicator system in the fixture
    "assessment.composite": Expect(EVALUATORS),
    "assessment.entries": Expect(EVALUATORS),
    "assessment.evidence": Expect(EVALUATORS, ok=404),
    "assessment.review": Expect(EVALUATORS),
    "assessment.review_csv": Expect(EVALUATORS),
    "assessment.decide": Expect(EVALUATORS),
    "assessment.export_xlsx": Expect(EVALUATORS, ok=404),
    "assessment.export_csv": Expect(EVALUATORS, ok=404),
    "assessment.workers": Expect(EVALUATORS),
    "assessment.report": Expect(EVALUATORS, ok=404),
    "assessment.casemix_view": Expect(EVALUATORS),
    # administration
    "admin.index": Expect(ADMIN),
    "admin.rules": Expect(ADMIN),
    "admin.rule_set": Expect(ADMIN),
    "admin.download_rules": Expect(ADMIN),
    "admin.upload_rules": Expect(ADMIN),
    "admin.preview_rules": Expect(ADMIN, ok=404),  # no such staged upload
    "admin.publish_staged_rules": Expect(ADMIN),
    "admin.cancel_staged_rules": Expect(ADMIN),
    "admin.jobs": Expect(ADMIN),
    "admin.requeue": Expect(ADMIN),
    "imports.units": Expect(ADMIN),
    "admin.users": Expect(ADMIN),
    "admin.user": Expect(ADMIN, ok=404),  # no such user id
    "admin.reset_password": Expect(ADMIN),
    "admin.reset_totp": Expect(ADMIN),
    "admin.audit_trail": Expect(ADMIN),
    "admin.audit_csv": Expect(ADMIN),
    # the hotline's audited reveal of a number for the 回访 call (POST only)
    "contact.callback_number": Expect(HOTLINE, scope="case"),
    "imports.unit_import": Expect(ADMIN, ok=404),  # no import in the fixture
    "calendar_admin.index": Expect(ADMIN),
    "partners.api_keys": Expect(ADMIN),
    "partners.revoke_key": Expect(ADMIN, ok=404),  # no such key in the fixture
    "partners.webhooks": Expect(ADMIN),
    "partners.webhook": Expect(ADMIN, ok=404),
    "partners.toggle_webhook": Expect(ADMIN, ok=404),
    "calendar_admin.year": Expect(ADMIN),
    "calendar_admin.upload": Expect(ADMIN),
    "messages_admin.index": Expect(ADMIN),  # the SMS/e-mail delivery log (masked recipients)
    # co-governance: public topic pages, residents' part, community staff, the ledgers
    "governance.topics": Expect(EVERYONE),
    "governance.topic": Expect(frozenset(), denied=404, anonymous=404),  # an unknown topic
    "governance.download": Expect(frozenset(), denied=404, anonymous=404),  # an unknown file
    "governance.new_topic": Expect(RESIDENT | GOV_STAFF),
    "governance.comment": Expect(RESIDENT | GOV_STAFF),
    "governance.vote": Expect(RESIDENT),
    "governance.rate": Expect(RESIDENT),
    "governance.my_home": Expect(RESIDENT),
    "governance.manage": Expect(GOV_STAFF),
    "governance.verify": Expect(GOV_STAFF),
    "governance.promote": Expect(GOV_STAFF),
    "governance.act": Expect(GOV_STAFF),
    "governance.link": Expect(GOV_STAFF),
    "governance.hide": Expect(GOV_STAFF),
    "ledgers.index": Expect(LEDGER_READERS),
    "ledgers.ledger": Expect(LEDGER_READERS),
    "ledgers.export": Expect(LEDGER_READERS),
    "api_v1.list_topics": Expect(EVERYONE),
    "api_v1.get_topic": Expect(frozenset(), denied=404, anonymous=404),  # an unknown topic
}

# URL arguments by name (``tracking_number`` is the case under test; ``code`` a unit of the subtree).
ARGS: dict[str, Any] = {
    "filename": "site.css",
    "quarter": "2026Q3",
    "code": "420102-S1-C1",
    "node": "T",
    "system_id": 999_999,
    "entry_id": 999_999,
    "item_id": 999_999,
    "upload_id": 999_999,
    "import_id": 999_999,
    "user_id": 999_999,
    "version": 1,
    "queue": "routing",
    "job_id": "no-such-job",
    "action": "close",  # surveys.change_status; workbench.act uses ACT_ACTION
    "fmt": "csv",
    "year": 2026,
    "topic_id": 999_999,
    "comment_id": 999_999,
    "residency_id": 999_999,
    "file_id": 999_999,
    "kind": "meetings",
    "question_id": 999_999,
    "direction": "up",
    "key": "no-such-photo",
    "size": "thumb",
    "ext": "json",  # Open311 format
    "key_id": 999_999,
    "webhook_id": 999_999,
    "service_code": "HW-01",
    "service_request_id": "MH20990101-ZZZZZ",
    "token": "no-such-token",
}
ACT_ACTION = "supervise"
OUTSIDE_CODE = OTHER_DISTRICT_COMMUNITY  # the ``code`` of routes with scope="unit", outside the demo subtree
# Tables a refused request may write, with the reason (none today).
WRITES_ALLOWED: dict[str, str] = {}
WRITE = re.compile(r"^\s*(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+\"?(\w+)", re.IGNORECASE)


@dataclass
class World:
    """The shared fixture: signed-in clients per role, the cases, the survey, and the write log."""

    app: Flask
    clients: dict[str, Any]
    inside: dict[str, str]  # role → tracking number of a case it may see
    outside: dict[str, str]  # role → tracking number of a case it may not see
    survey_id: int
    writes: list[str]


def _login(app: Flask, client: Any, username: str) -> None:
    with app.app_context():
        response = client.post("/login", data={"username": username, "password": "demo-pass-2026"})
    assert response.status_code == 302, (username, response.status_code)


@pytest.fixture(scope="module")
def world(app: Flask) -> Iterator[World]:
    """One transaction for the whole module: cases, a survey and one signed-in client per role."""
    with rolled_back_session(app) as session:
        resident = user(session, "resident")
        home = accepted(session, "HW-01", resident=resident)  # 420102-S1-C1: the demo subtree
        far = accepted(session, "WY-01", community=OTHER_DISTRICT_COMMUNITY)  # another district
        assert far.current_unit is not None
        far_handler = session.scalar(select(User).where(User.unit_id == far.current_unit_id))
        far_handler = far_handler or make_user(
            session, "matrix-far-handler", Role.handler, far.current_unit.code
        )
        # 市房管局 is summoned to the far case: that is the case it may see, and home is outside it.
        services.escalate(session, far.id, far_handler, note="物业问题", to_unit_codes=["D-FGJ"])
        survey = survey_services.create_survey(session, "2026Q3", "权限矩阵问卷")
        session.commit()
        survey_id = survey.id  # each request's app context ends by removing the session: keep plain values
        inside = {role: home.tracking_number for role in ROLES}
        outside = {role: far.tracking_number for role in ROLES if role not in CITY_WIDE}
        inside["handler-fgj"], outside["handler-fgj"] = far.tracking_number, home.tracking_number
        outside[ANONYMOUS] = far.tracking_number
        clients = {}
        for number, role in enumerate(ROLES):
            client = app.test_client()
            client.environ_base["REMOTE_ADDR"] = f"10.9.0.{number + 1}"  # per-address limits stay apart
            if role != ANONYMOUS:
                _login(app, client, role)
            clients[role] = client
        writes: list[str] = []

        def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            found = WRITE.match(statement)
            if found and found.group(1) not in WRITES_ALLOWED:
                writes.append(found.group(1))

        event.listen(db.engine, "before_cursor_execute", record)
        try:
            yield World(app, clients, inside, outside, survey_id, writes)
        finally:
            event.remove(db.engine, "before_cursor_execute", record)


def _url(world: World, rule: Any, number: str | None, code: str) -> str:
    values: dict[str, Any] = {}
    for name in rule.arguments:
        if name == "tracking_number":
            values[name] = number
        elif name == "code":
            values[name] = code
        elif name == "survey_id":
            values[name] = world.survey_id
        elif name == "action" and rule.endpoint == "workbench.act":
            values[name] = ACT_ACTION
        else:
            assert name in ARGS, f"{rule.endpoint}: add URL argument {name!r} to ARGS"
            values[name] = ARGS[name]
    with world.app.test_request_context():
        return rule.build(values, append_unknown=False)[1]


def _expected(expect: Expect, role: str, where: str) -> int:
    gate = expect.may if expect.gate is None else expect.gate | expect.may
    if role in gate and where == "outside":
        return expect.outside
    if role in expect.may:
        return expect.ok
    return expect.anonymous if role == ANONYMOUS else expect.denied


def _rules(app: Flask) -> list[Any]:
    return sorted(app.url_map.iter_rules(), key=lambda r: (r.endpoint, r.rule))


def _endpoints(app: Flask) -> list[str]:
    return sorted({r.endpoint for r in app.url_map.iter_rules()})


def test_every_route_has_a_declared_expectation(app: Flask) -> None:
    routes = set(_endpoints(app))
    assert sorted(routes - set(EXPECT)) == [], "declare who may use these routes in EXPECT"
    assert sorted(set(EXPECT) - routes) == [], "these routes are gone: remove their lines from EXPECT"


def _probe(world: World, role: str, method: str, url: str) -> tuple[int, str]:
    with world.app.app_context():  # a fresh ``g`` per request, as in production
        response = world.clients[role].open(url, method=method, data={})
        response.close()  # file responses (static) hold their file open until closed
    return response.status_code, response.headers.get("Location", "")


def _endpoint_params() -> list[str]:
    return sorted(EXPECT)


@pytest.mark.parametrize("endpoint", _endpoint_params())
def test_route_answers_each_role_as_declared(world: World, endpoint: str) -> None:
    expect = EXPECT[endpoint]
    rules = [r for r in _rules(world.app) if r.endpoint == endpoint]
    if not rules:
        pytest.skip(f"{endpoint} is not a route of this app (see the declaration test)")
    wrong = []
    for rule in rules:
        methods = sorted((rule.methods or set()) & {"GET", "POST"})
        for role in ROLES:
            for where in ["inside", "outside"] if expect.scope else ["inside"]:
                number = (world.inside if where == "inside" else world.outside).get(role)
                if expect.scope == "case" and number is None:
                    continue  # a city-wide role: nothing is outside
                code = ARGS["code"] if where == "inside" else OUTSIDE_CODE
                url = _url(world, rule, number or world.inside[role], code)
                # A unit outside the subtree of a city-wide role is still inside the city.
                seen = "inside" if expect.scope == "unit" and role in CITY_WIDE else where
                want = _expected(expect, role, seen)
                for method in methods:
                    refused = role not in expect.may or seen == "outside"
                    if method == "POST" and (not refused or not expect.post):
                        continue  # only refusals are sent: they must change nothing
                    if method == "GET" and "GET" not in (rule.methods or ()):
                        continue
                    before = len(world.writes)
                    status, location = _probe(world, role, method, url)
                    got = status
                    if want == 302 and role == ANONYMOUS and status == 302 and "/login" not in location:
                        got = -302  # a redirect, but not to the login page
                    if got != want:
                        wrong.append(f"{method} {url} as {role} ({where}): {status}, expected {want}")
                    if refused and len(world.writes) > before:
                        wrong.append(f"{method} {url} as {role} ({where}) wrote {world.writes[before:]}")
    assert wrong == []
