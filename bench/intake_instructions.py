"""Instructions per JSON intake and per bare insert, counted by callgrind: a measure the machine's noise
does not move (the same code gives the same count within a fraction of a percent).

    valgrind --tool=callgrind --collect-atstart=no --toggle-collect=functools_reduce \\
        --callgrind-out-file=/tmp/intake.cg .venv/bin/python bench/intake_instructions.py \\
        [--path /api/v1/requests|/bare/] [--requests 100] [--region flask.app:Flask.wsgi_app] \\
        [--database-url postgresql://postgres@127.0.0.1:5432/postgres]

It creates a PostgreSQL database with the demo city (dropped at the end), builds the app and the bare
app of ``bench/intake_wsgi.py``, sends 30 warm-up requests through the WSGI test client, fills the
catalogue and unit caches, then sends ``--requests`` more. Only the calls of ``--region`` (a module and
attribute path, default the Flask app's ``wsgi_app``: the request inside Flask, without the test
client) made during those requests are counted: each runs inside ``functools.reduce``, the C function
callgrind toggles collection on. Divide callgrind's "Collected" by the count printed. Loopback only;
the enqueued jobs go to queues with a unique prefix, deleted at the end.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import json
import os
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

from redis import Redis
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


class Region:
    """Wraps a callable so that its outermost calls run inside functools.reduce (callgrind's toggle)."""

    def __init__(self) -> None:
        self.counting = False
        self.calls = 0
        self._inside = False

    def wrap(self, fn: Any) -> Any:
        @functools.wraps(fn)
        def counted(*args: Any, **kwargs: Any) -> Any:
            if self._inside or not self.counting:
                return fn(*args, **kwargs)
            self._inside = True
            self.calls += 1
            result: list[Any] = []
            try:
                functools.reduce(lambda _a, _b: result.append(fn(*args, **kwargs)), (0, 0))
            finally:
                self._inside = False
            return result[0]

        return counted

    def install(self, spec: str) -> None:
        """Wrap ``module:attr.path`` in place."""
        module, attribute = spec.split(":")
        owner: Any = importlib.import_module(module)
        *path, last = attribute.split(".")
        for name in path:
            owner = getattr(owner, name)
        setattr(owner, last, self.wrap(getattr(owner, last)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--path", default="/api/v1/requests")
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--region", default="flask.app:Flask.wsgi_app")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
    )
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    opts = parser.parse_args()
    import bench.bench_intake as intake_bench

    admin_url = make_url(opts.database_url).set(drivername="postgresql+psycopg")
    name = f"minhu_count_{uuid.uuid4().hex[:8]}"
    prefix = f"count-{uuid.uuid4().hex[:6]}-"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        url = admin_url.set(database=name).render_as_string(hide_password=False)
        intake_bench.prepare(url)
        os.environ.update(
            DATABASE_URL=url,
            REDIS_URL=opts.redis_url,
            RQ_QUEUE_PREFIX=prefix,
            SECRET_KEY="bench",
            LOG_LEVEL="WARNING",
            API_LIMIT="1000000 per minute",
            INSTANCE_PATH=tempfile.mkdtemp(),
        )
        from werkzeug.test import Client

        from bench.intake_wsgi import build

        region = Region()
        region.install(opts.region)
        wsgi = build()
        client = Client(wsgi)
        headers = {"Content-Type": "application/json"}
        for i in range(30 + opts.requests):
            if i == 30:
                _fill_caches(wsgi.app, intake_bench.CATEGORIES, intake_bench.COMMUNITIES)
                region.counting = True
            response = client.post(opts.path, data=intake_bench.body(i), headers=headers)
            assert response.status_code == 201, response.get_data(as_text=True)
        print(json.dumps({"path": opts.path, "region": opts.region, "calls": region.calls}))
    finally:
        redis = Redis.from_url(opts.redis_url)
        for key in redis.scan_iter(f"*{prefix}*"):
            redis.delete(key)
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _fill_caches(app: Any, categories: list[str], communities: list[str]) -> None:
    """Every category and community in the per-process caches, as a server warmed by real traffic has."""
    from app.extensions import db
    from routing.intake import category_by_code, place_by_code

    with app.app_context():
        for code in categories:
            category_by_code(db.session, code)
        for code in communities:
            place_by_code(db.session, code)
        db.session.remove()


if __name__ == "__main__":
    main()
