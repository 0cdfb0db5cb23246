"""Audit trail: who did what to which object, when, from which (hashed) address.

Rows never hold personal data: no resident names or phone numbers, no typed-in usernames of failed
logins for unknown accounts, no raw IP addresses (the web shell passes a keyed hash). Services and views
call :func:`record` inside their own transaction, so an audited action and its audit row commit together.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, String, select
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.db import Base, DbSession, utcnow
from core.i18n import N_
from core.models import User

# Every action the trail knows, with its label; record() refuses others so the search list stays true.
ACTIONS: dict[str, str] = {
    "login.success": N_("登录成功"),
    "login.failure": N_("登录失败"),
    "login.rate_limited": N_("登录尝试过多被拒"),
    "logout": N_("退出登录"),
    "password.change": N_("修改密码"),
    "password.reset_code": N_("发送重置密码短信验证码"),
    "password.reset_by_code": N_("凭短信验证码重置密码"),
    "phone.code_sent": N_("发送手机验证码"),
    "phone.verify": N_("验证手机号并关联以前的诉求"),
    "totp.enrol": N_("启用两步验证"),
    "totp.failure": N_("两步验证码错误"),
    "totp.disable": N_("关闭两步验证"),
    "contact.view": N_("查看居民完整联系方式"),
    "export": N_("导出数据"),
    "rules.publish": N_("发布派单规则"),
    "indicators.change": N_("修改考评指标"),
    "scoring.publish": N_("发布考评结果"),
    "user.create": N_("新建用户"),
    "user.update": N_("修改用户"),
    "user.password_reset": N_("重置用户密码"),
    "user.totp_reset": N_("重置两步验证"),
    "governance.edit": N_("编辑共治记录（议题、表决、台帐）"),
    "api_key.use": N_("合作方 api_key 调用接口"),
    "api_key.create": N_("创建合作方 api_key"),
    "api_key.revoke": N_("吊销合作方 api_key"),
}


class AuditEvent(Base):
    """One audited action."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    actor_role: Mapped[str] = mapped_column(String(20), default="")
    action: Mapped[str] = mapped_column(String(40), index=True)
    object_type: Mapped[str] = mapped_column(String(40), default="")
    object_id: Mapped[str] = mapped_column(String(80), default="")
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    address_hash: Mapped[str] = mapped_column(String(64), default="")

    actor: Mapped[User | None] = relationship()


def record(
    session: DbSession,
    action: str,
    actor: User | None = None,
    object_type: str = "",
    object_id: str | int = "",
    details: dict[str, Any] | None = None,
    address_hash: str = "",
) -> AuditEvent:
    """Add one audit row (flush only); ``details`` must hold no personal data."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    event = AuditEvent(
        actor_id=actor.id if actor is not None else None,
        actor_role=str(actor.role) if actor is not None else "",
        action=action,
        object_type=object_type,
        object_id=str(object_id)[:80],
        details=details or {},
        address_hash=address_hash,
    )
    session.add(event)
    session.flush()
    return event


@dataclass(frozen=True)
class AuditQuery:
    """Search terms of the audit page; every one optional. ``until`` is exclusive."""

    username: str = ""
    action: str = ""
    since: datetime | None = None
    until: datetime | None = None


def search(session: DbSession, query: AuditQuery, limit: int | None = 500) -> list[AuditEvent]:
    """Audit rows matching ``query``, newest first."""
    statement = select(AuditEvent).order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
    if query.username:
        statement = statement.join(User, AuditEvent.actor_id == User.id).where(
            User.username == query.username
        )
    if query.action:
        statement = statement.where(AuditEvent.action == query.action)
    if query.since is not None:
        statement = statement.where(AuditEvent.at >= query.since)
    if query.until is not None:
        statement = statement.where(AuditEvent.at < query.until)
    if limit is not None:
        statement = statement.limit(limit)
    return list(session.scalars(statement))
