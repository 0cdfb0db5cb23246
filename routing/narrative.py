"""Each audit event told in plain Chinese for the resident's status page and the staff timeline."""

from __future__ import annotations

from core.i18n import N_
from routing.lifecycle import SATISFACTION_LABELS, Satisfaction
from routing.models import CaseEvent

ACTION_LABELS = {
    "submit": N_("诉求已受理"),
    "dispatch": N_("已派单"),
    "route": N_("已转交下级派单"),
    "pass_down": N_("已转派下级"),
    "triage": N_("转人工分派"),
    "accept": N_("承办单位已签收"),
    "return_case": N_("承办单位退单"),
    "escalate": N_("吹哨上报"),
    "respond_escalation": N_("部门报到响应"),
    "request_extension": N_("申请延期"),
    "approve_extension": N_("延期已批准"),
    "refuse_extension": N_("延期未获批准"),
    "resolve": N_("已办结"),
    "callback": N_("回访评价"),
    "reopen": N_("重新办理"),
    "supervise": N_("督办"),
    "merge": N_("合并到其他诉求"),
    "close": N_("已归档"),
    "warn": N_("即将超时提醒"),
    "recompute_deadline": N_("办理时限按正式节假日安排重新计算"),
}
# Recounted clocks other than the handling deadline (see routing.calendar_services).
_CLOCKS = {"sign_for_deadline": "签收时限", "callback_due": "回访期限"}


def _unit(event: CaseEvent, attr: str) -> str:
    unit = getattr(event, attr)
    return unit.name if unit is not None else ""


def _rating(value: object) -> str:
    try:
        return SATISFACTION_LABELS[Satisfaction(str(value))]
    except ValueError:
        return ""


def describe(event: CaseEvent, for_resident: bool = True) -> str:
    """One sentence saying what happened at this step and who is responsible now."""
    label = ACTION_LABELS.get(event.action, event.action)
    to_unit, from_unit = _unit(event, "to_unit"), _unit(event, "from_unit")
    details = event.details or {}
    action = event.action
    if action == "submit":
        channel = "12345 热线" if details.get("channel") == "phone" else "网上"
        return f"{label}（{channel}渠道），正在分派给负责单位"
    if action in ("dispatch", "pass_down") and to_unit:
        if details.get("forced") and not for_resident:  # the audited override of the no-ping-pong rule
            return f"强制指派至 {to_unit}（该单位曾退回此工单），等待签收"
        return f"{label}至 {to_unit}，等待签收"
    if action == "route" and to_unit:
        return f"已转交 {to_unit} 继续分派"
    if action == "triage":
        return f"{label}：{to_unit or '派单中心'} 正在确定承办单位"
    if action == "accept":
        return f"{from_unit or to_unit} 已签收，正在办理"
    if action == "return_case":
        text = f"{from_unit} 认为不属于本单位办理，已退回上级重新分派"
        return text if for_resident else f"{text}（{event.reason}）"
    if action == "approve_extension" and (details.get("new_deadline_local") or details.get("new_deadline")):
        # new_deadline is ISO UTC; the service adds the Beijing-time wording people read.
        return f"{label}，新的办结期限为 {details.get('new_deadline_local') or details['new_deadline']}"
    if action == "recompute_deadline" and details.get("new_deadline_local"):
        clock = _CLOCKS.get(details.get("field", "deadline"), "")
        if clock:
            return f"{clock}按正式节假日安排重新计算，新的期限为 {details['new_deadline_local']}"
        return f"{label}，办结期限为 {details['new_deadline_local']}"
    if action == "resolve":
        reply = details.get("reply") or event.reason
        return f"{from_unit or ''} 已办结。答复：{reply}" if reply else label
    if action == "callback":
        rating = details.get("satisfaction_label") or _rating(details.get("satisfaction"))
        solved = (
            {True: "问题已解决，", False: "问题未解决，"}.get(bool(details["solved"]), "")
            if "solved" in details
            else ""
        )
        text = f"{label}：{solved}{rating}"
        if details.get("outcome") == "reopened":
            text += "，已重新交承办单位办理"
        return text
    return f"{label}{('：' + event.reason) if event.reason and not for_resident else ''}"
