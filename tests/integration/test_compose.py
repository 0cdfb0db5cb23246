"""docker-compose.yml, run natively: each service's command against the local PostgreSQL and Redis.

No Docker engine runs here, so the test reads the compose file (PyYAML), checks its shape (services,
health checks, volumes, start order), validates it with ``docker-compose config`` when that program is
installed, and then runs every application service's own command line on this machine: ``migrate``
exits 0, ``web`` (gunicorn with gunicorn.conf.py) answers /readyz 200, ``worker`` routes cases submitted
through the web server, ``scoring-worker`` runs a job queued by ``flask scoring enqueue``, ``beat`` runs a
period. Then it scans the web and worker logs of that whole run — an error path included — for the
phone numbers and names it submitted (issue 9: none may appear).

The schema lives in a database created for this module and dropped afterwards; queues get a unique
prefix. Skipped with a reason when PostgreSQL or Redis is unreachable, except under CI=true.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CI = os.environ.get("CI", "").lower() == "true"
ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
_DB = os.environ.get("DATABASE_URL", "")
DATABASE_URL = (
    _DB if _DB.startswith(("postgresql", "postgres")) else "postgresql://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"


def _free_port() -> int:
    """A loopback port nobody listens on now (several worktrees may run this test at once)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


WEB_PORT = int(os.environ.get("COMPOSE_TEST_PORT") or _free_port())
APP_SERVICES = ("migrate", "web", "worker", "scoring-worker", "beat")
# Residents of this run: none of these may appear in any log line.
RESIDENTS = [("欧阳晓岚", "13911110001"), ("司马青云", "13922220002"), ("诸葛文静", "13933330003")]
ERROR_RESIDENT = ("上官雨桐", "13944440004")


def _services_missing() -> str | None:
    import redis

    engine = create_engine(make_url(DATABASE_URL).set(drivername="postgresql+psycopg"))
    try:
        engine.connect().close()
    except Exception as exc:
        return f"PostgreSQL unreachable: {exc.__class__.__name__}"
    finally:
        engine.dispose()
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except Exception as exc:
        return f"Redis unreachable: {exc.__class__.__name__}"
    finally:
        client.close()
    return None


_missing = _services_missing()
if _missing and not CI:
    pytest.skip(f"compose services need real PostgreSQL and Redis: {_missing}", allow_module_level=True)


def compose() -> dict[str, Any]:
    """The parsed docker-compose.yml."""
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def example_env() -> dict[str, str]:
    """KEY=value pairs of .env.example."""
    pairs = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            pairs[key.strip()] = value.strip()
    return pairs


_VAR = re.compile(r"\$\{(\w+)(?::?[-?]([^}]*))?\}")


def substitute(value: Any, variables: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?message} interpolation, enough for our file."""

    def one(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2) or ""
        if variables.get(name):
            return variables[name]
        if ":?" in match.group(0):
            raise AssertionError(f"{name} is required and not in .env.example")
        return default

    return _VAR.sub(one, str(value))


# --- the file itself --------------------------------------------------------------------------------


def test_compose_file_has_every_service_in_order() -> None:
    services = compose()["services"]
    assert set(APP_SERVICES) | {"postgres", "redis"} <= set(services)
    for name in ("web", "worker", "scoring-worker", "beat"):
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully", name
        assert depends["redis"]["condition"] == "service_healthy", name
    assert services["migrate"]["command"] == ["flask", "db", "upgrade"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["migrate"]["restart"] == "no"
    for name in ("worker", "scoring-worker"):  # scalable with --scale: no fixed name, no host port
        assert "container_name" not in services[name] and "ports" not in services[name]
    assert "--appendonly" in services["redis"]["command"]
    for name in ("postgres", "redis"):
        assert services[name]["healthcheck"]["test"], name
    assert services["web"]["healthcheck"]["test"] and services["web"]["command"][0] == "gunicorn"
    mounts = {name: services[name].get("volumes", []) for name in services}
    assert any(m.startswith("pgdata:") for m in mounts["postgres"])
    assert any(m.startswith("redisdata:") for m in mounts["redis"])
    assert all(any(m.startswith("uploads:") for m in mounts[n]) for n in APP_SERVICES)
    assert {"pgdata", "redisdata", "uploads"} <= set(compose()["volumes"])


def test_dockerfile_installs_from_the_lock_as_non_root_with_healthcheck() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"pip install --require-hashes .*-r requirements\.lock", dockerfile)
    assert re.search(r"^USER (?!root)\w+", dockerfile, re.M)
    assert re.search(r"^HEALTHCHECK .*", dockerfile, re.M) and "/healthz" in dockerfile
    # Every package the project ships reaches the image (COPY . with .dockerignore).
    import tomllib

    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    ignored = {line.strip().rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines()}
    assert re.search(r"^COPY\b.* \. \./?$", dockerfile, re.M)
    for pattern in packages["include"]:
        name = pattern.rstrip("*")
        assert (ROOT / name).is_dir() and name not in ignored, name
    assert {"migrations", "gunicorn.conf.py", "requirements.lock"}.isdisjoint(ignored)


def test_docker_compose_config_validates() -> None:
    program = shutil.which("docker-compose")
    if program is None:
        if CI:
            pytest.fail("docker-compose is not installed (.ci/run installs Debian's docker-compose)")
        pytest.skip(
            "docker-compose is not installed (apt-get install docker-compose validates without a daemon)"
        )
    result = subprocess.run(
        [
            program,
            "--env-file",
            str(ROOT / ".env.example"),
            "-f",
            str(ROOT / "docker-compose.yml"),
            "config",
            "-q",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if k not in example_env()},
    )
    assert result.returncode == 0, result.stderr


# --- the services, run natively -----------------------------------------------------------------------


class Stack:
    """The throwaway database, the environment each service gets, and the logs of everything run."""

    def __init__(self, url: str, tmp: Path) -> None:
        self.url = url
        self.tmp = tmp
        self.prefix = f"compose-{uuid.uuid4().hex[:8]}-"
        self.logs: dict[str, str] = {}
        self.base = f"http://127.0.0.1:{WEB_PORT}"
        self.web: subprocess.Popen[str] | None = None

    def env(self, service: str) -> dict[str, str]:
        """The service's compose environment, with this machine's database, Redis, paths and port."""
        variables = example_env()
        spec = compose()["services"][service]
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
        env.update({k: substitute(v, variables) for k, v in (spec.get("environment") or {}).items()})
        env.update(
            {
                "DATABASE_URL": self.url,
                "REDIS_URL": REDIS_URL,
                "RQ_QUEUE_PREFIX": self.prefix,
                "INSTANCE_PATH": str(self.tmp / "instance"),
                "FLASK_APP": "app",  # the Dockerfile's ENV
            }
        )
        if service == "web":
            env.update(
                {
                    "GUNICORN_BIND": f"127.0.0.1:{WEB_PORT}",
                    "GUNICORN_WORKERS": "2",
                    "GUNICORN_THREADS": "2",
                    "PROMETHEUS_MULTIPROC_DIR": str(self.tmp / "prometheus"),
                }
            )
        return env

    def argv(self, service: str, *extra: str) -> list[str]:
        """The service's command with its program taken from this virtualenv."""
        command = list(compose()["services"][service]["command"])
        return [str(BIN / command[0]), *command[1:], *extra]

    def run(self, service: str, *extra: str, timeout: int = 300) -> subprocess.CompletedProcess[str]:
        """Run a service's command to completion; keep its output as that service's log."""
        result = subprocess.run(
            self.argv(service, *extra),
            cwd=ROOT,
            env=self.env(service),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        self.logs[f"{service}#{len(self.logs)}"] = result.stdout + result.stderr
        return result

    def start(self, service: str, *extra: str) -> subprocess.Popen[str]:
        """Start a long-running service's command (stop it with :meth:`stop`, which keeps its log)."""
        return subprocess.Popen(
            self.argv(service, *extra),
            cwd=ROOT,
            env=self.env(service),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def stop(self, service: str, process: subprocess.Popen[str]) -> int:
        """SIGTERM (a warm shutdown), wait, keep its output as that service's log; its exit code."""
        process.terminate()
        try:
            output, _ = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
        self.logs[f"{service}#{len(self.logs)}"] = output
        return process.returncode

    def flask(self, *args: str) -> subprocess.CompletedProcess[str]:
        """A one-off ``flask`` command in the migrate service's environment (setup, not a service)."""
        result = subprocess.run(
            [str(BIN / "flask"), *args],
            cwd=ROOT,
            env=self.env("migrate"),
            capture_output=True,
            text=True,
            timeout=300,
        )
        self.logs[f"flask {args[0]}#{len(self.logs)}"] = result.stdout + result.stderr
        return result


def http(
    method: str, url: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, Any, Any]:
    """Status, parsed JSON (or text) and headers of one request to the web service."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            raw, status, got = response.read(), response.status, response.headers
    except urllib.error.HTTPError as error:
        raw, status, got = error.read(), error.code, error.headers
    try:
        return status, json.loads(raw), got
    except ValueError:
        return status, raw.decode(errors="replace"), got


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A fresh database migrated by the migrate service, with the demo's reference data, and the web up."""
    admin_url = make_url(DATABASE_URL).set(drivername="postgresql+psycopg")
    name = f"minhu_compose_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = admin_url.set(database=name).render_as_string(hide_password=False)
    stack = Stack(url, tmp_path_factory.mktemp("compose"))
    try:
        yield stack
    finally:
        if stack.web is not None and stack.web.poll() is None:
            stack.web.send_signal(signal.SIGTERM)
            try:
                stack.web.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                stack.web.kill()
                stack.web.communicate()
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        for key in client.scan_iter(f"*{stack.prefix}*"):
            client.delete(key)
        client.close()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_services_run_natively(stack: Stack) -> None:
    # migrate: exits 0 on an empty database, and again on a migrated one.
    first = stack.run("migrate")
    assert first.returncode == 0, first.stderr[-3000:]
    again = stack.run("migrate")
    assert again.returncode == 0, again.stderr[-3000:]
    demo = stack.flask("demo", "--no-quarter")
    assert demo.returncode == 0, demo.stderr[-3000:]

    # web: gunicorn with gunicorn.conf.py answers /readyz 200.
    stack.web = subprocess.Popen(
        stack.argv("web"),
        cwd=ROOT,
        env=stack.env("web"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 90
    status, body = 0, None
    while time.monotonic() < deadline:
        try:
            status, body, _ = http("GET", f"{stack.base}/readyz")
        except OSError:
            status = 0
        if status == 200 or stack.web.poll() is not None:
            break
        time.sleep(0.5)
    assert status == 200, body
    assert body["checks"]["migrations"]["ok"] is True
    status, _, headers = http("GET", f"{stack.base}/healthz", headers={"X-Request-ID": "compose-check-1"})
    assert status == 200 and headers["X-Request-ID"] == "compose-check-1"

    # Requests from residents with known names and phones, through the web server.
    submitted = []
    for i, (resident, phone) in enumerate(RESIDENTS):
        status, body, _ = http(
            "POST",
            f"{stack.base}/api/v1/requests",
            {
                "category": "HW-01",
                "community": "420102-S1-C1",
                "address": f"编排测试路 {i} 号",
                "description": f"{resident}反映楼道灯坏了，联系电话 {phone}",
                "contact_name": resident,
                "contact_phone": phone,
            },
        )
        assert status == 201, body
        submitted.append((body["tracking_number"], body["token"]))
    # An invalid one (bad phone) and a failing one (the insert itself fails in the database).
    status, body, _ = http(
        "POST",
        f"{stack.base}/api/v1/requests",
        {
            "category": "HW-01",
            "community": "420102-S1-C1",
            "address": "x",
            "description": "坏电话",
            "contact_name": ERROR_RESIDENT[0],
            "contact_phone": "1" + ERROR_RESIDENT[1],
        },
    )
    assert status == 422, body
    engine = create_engine(stack.url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "CREATE FUNCTION forced_failure() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                "RAISE EXCEPTION 'forced failure' USING ERRCODE = 'data_exception', "
                "DETAIL = 'Failing row contains (' || NEW.contact_name || ', ' || NEW.contact_phone || ').'; END $$"
            )
        )
        conn.execute(
            text(
                "CREATE TRIGGER forced_failure BEFORE INSERT ON cases FOR EACH ROW EXECUTE FUNCTION forced_failure()"
            )
        )
    status, body, _ = http(
        "POST",
        f"{stack.base}/api/v1/requests",
        {
            "category": "HW-01",
            "community": "420102-S1-C1",
            "address": "编排测试路 99 号",
            "description": f"{ERROR_RESIDENT[0]}的诉求",
            "contact_name": ERROR_RESIDENT[0],
            "contact_phone": ERROR_RESIDENT[1],
        },
    )
    assert status == 500
    with engine.begin() as conn:
        conn.execute(text("DROP TRIGGER forced_failure ON cases"))
        conn.execute(text("DROP FUNCTION forced_failure()"))
    engine.dispose()

    # worker: the routing queue's command as compose runs it. The web process queued nothing: the
    # database announced each case, and the worker's dispatcher catches up on them when it starts.
    def states() -> list[Any]:
        return [
            http("GET", f"{stack.base}/api/v1/requests/{tracking}?token={token}")[1]
            for tracking, token in submitted
        ]

    worker = stack.start("worker")
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and worker.poll() is None:
        if all(body["state"] == "dispatched" for body in states()):
            break
        time.sleep(0.5)
    assert stack.stop("worker", worker) in (0, -signal.SIGTERM), stack.logs
    for body in states():
        assert body["state"] == "dispatched", body

    # scoring-worker: runs the job `flask scoring enqueue` queued.
    enqueued = stack.flask("scoring", "enqueue", "2026Q3")
    assert enqueued.returncode == 0, enqueued.stderr[-3000:]
    scored = stack.run("scoring-worker", "--burst")
    assert scored.returncode == 0, scored.stderr[-3000:]
    assert_scoring_job_finished(stack)

    # beat: one period of the sweeper and the deadline scan.
    beat = stack.run("beat", "--once")
    assert beat.returncode == 0, beat.stderr[-3000:]

    # /metrics from loopback: requests summed over both gunicorn workers, state gauges, scoring duration.
    status, metrics, _ = http("GET", f"{stack.base}/metrics")
    assert status == 200
    assert re.search(
        r'minhu_http_requests_total\{endpoint="api_v1\.create_request",method="POST",status="201"\} 3\.0',
        metrics,
    ), metrics[:3000]
    assert 'minhu_scoring_run_duration_seconds{quarter="2026Q3"}' in metrics
    assert re.search(r'minhu_queue_jobs\{queue="routing"\} 0\.0', metrics)

    stack.web.send_signal(signal.SIGTERM)
    out, _ = stack.web.communicate(timeout=60)
    stack.logs["web"] = out
    assert_logs_are_clean(stack)


def assert_scoring_job_finished(stack: Stack) -> None:
    """Some job on the scoring (or default) queue finished and none failed: whatever module scores."""
    import redis
    from rq.registry import FailedJobRegistry, FinishedJobRegistry

    client = redis.Redis.from_url(REDIS_URL)
    try:
        finished = failed = 0
        for queue in ("scoring", "default"):
            name = f"{stack.prefix}{queue}"
            finished += FinishedJobRegistry(name, connection=client).get_job_count(cleanup=False)
            failed += FailedJobRegistry(name, connection=client).get_job_count(cleanup=False)
    finally:
        client.close()
    assert finished >= 1 and failed == 0, (
        finished,
        failed,
        [v[-2000:] for k, v in stack.logs.items() if "scoring" in k],
    )


def assert_logs_are_clean(stack: Stack) -> None:
    """No submitted name or phone in any log, raw or JSON-escaped; web lines are JSON with request ids."""
    everything = "\n".join(stack.logs.values())
    assert "forced failure" in stack.logs["web"]  # the error path was logged
    for resident, phone in [*RESIDENTS, ERROR_RESIDENT]:
        for secret in (resident, json.dumps(resident)[1:-1], phone, phone[3:]):
            assert secret not in everything, (secret, [k for k, v in stack.logs.items() if secret in v])
    web_lines = [line for line in stack.logs["web"].splitlines() if line.strip()]
    records = [json.loads(line) for line in web_lines]  # every line is JSON
    access = [r for r in records if r.get("logger") == "minhu.access"]
    assert access and all(r.get("request_id") for r in access)
    assert any(r.get("request_id") == "compose-check-1" for r in access)
    worker_records = [
        json.loads(line)
        for k, v in stack.logs.items()
        if k.startswith("worker")
        for line in v.splitlines()
        if line.startswith("{")
    ]
    assert any(r.get("job_id") for r in worker_records), "worker log lines carry the job id"
