"""CI helper: ``pgdb.py create|drop|url ADMIN_URL NAME`` for a throwaway PostgreSQL database."""

from __future__ import annotations

import sys

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url


def main(action: str, admin_url: str, name: str) -> None:
    """Create or drop database ``name`` on the server of ``admin_url``, or print its URL."""
    url = make_url(admin_url).set(drivername="postgresql+psycopg")
    if action == "url":
        print(url.set(database=name).render_as_string(hide_password=False))
        return
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        if action == "create":
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()


if __name__ == "__main__":
    main(*sys.argv[1:4])
