"""``flask messages email|sweep``: staff e-mail addresses for new-case/overdue messages, and the sweeper."""

from __future__ import annotations

import re

import click
from flask.cli import AppGroup
from sqlalchemy import select

from app.extensions import db
from core.models import User

messages_cli = AppGroup("messages", help="短信与邮件")
# Deliberately loose (one @, a dot in the domain, no spaces): the SMTP server is the real judge.
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@messages_cli.command("email")
@click.argument("username")
@click.argument("address", required=False, default="")
def email_command(username: str, address: str) -> None:
    """Set (or, without ADDRESS, clear) a staff member's e-mail address."""
    user = db.session.scalar(select(User).where(User.username == username))
    if user is None or not user.is_staff:
        raise click.UsageError(f"没有名为 {username} 的工作人员账号")
    address = address.strip()
    if address and (not EMAIL.match(address) or len(address) > 254):
        raise click.UsageError("邮箱地址格式不正确")
    user.email = address or None
    db.session.commit()
    click.echo("已设置邮箱" if address else "已清除邮箱")


@messages_cli.command("sweep")
@click.option("--older-than", default=900, show_default=True, help="超过多少秒仍未发出的消息重新入队")
def sweep_command(older_than: int) -> None:
    """Re-enqueue SMS/e-mail whose job was lost."""
    from app import messaging

    click.echo(f"重新入队 {messaging.sweep(older_than_seconds=older_than)} 条消息")
