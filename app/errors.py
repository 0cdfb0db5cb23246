"""Error pages for people and structured errors for the API."""

from __future__ import annotations

from typing import Any

from flask import Flask, jsonify, render_template, request
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from core.i18n import N_

MESSAGES = {
    400: N_("请求有误"),
    401: N_("需要登录或提供查询凭证"),
    403: N_("您没有权限进行此操作"),
    404: N_("页面或记录不存在"),
    405: N_("不支持的请求方法"),
    409: N_("请求与现有数据冲突"),
    413: N_("提交的内容过大"),
    415: N_("不支持的内容类型，请使用 application/json"),
    422: N_("提交的内容无法处理"),
    429: N_("请求过于频繁，请稍后再试"),
    500: N_("服务器内部错误，请稍后再试"),
}
CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "unprocessable",
    429: "too_many_requests",
    500: "server_error",
}


def api_error(status: int, errors: list[dict[str, Any]] | None = None) -> Any:
    """A JSON error body ``{"errors": [{"field", "code", "message"}]}`` with ``status``."""
    body = errors or [
        {"field": None, "code": CODES.get(status, "error"), "message": _(MESSAGES.get(status, N_("错误")))}
    ]
    return jsonify({"errors": body}), status


def wants_json() -> bool:
    """API paths answer in JSON."""
    return request.path.startswith("/api/")


def init_app(app: Flask) -> None:
    """Register the handlers."""

    @app.errorhandler(CSRFError)
    def csrf_error(exc: CSRFError) -> Any:
        message = _("页面已过期或表单凭证无效，请刷新页面后重新提交")
        if wants_json():
            return api_error(400, [{"field": None, "code": "csrf", "message": message}])
        return render_template("error.html", status=400, message=message), 400

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Any:
        status = exc.code or 500
        if wants_json():
            body, code = api_error(status)
            allowed = getattr(exc, "valid_methods", None)
            if status == 405 and allowed:  # RFC 9110: a 405 lists the methods the resource supports
                body.headers["Allow"] = ", ".join(allowed)
            return body, code
        return render_template(
            "error.html", status=status, message=_(MESSAGES.get(status, N_("错误")))
        ), status
