"""Schemas of the JSON API v1 (pydantic v2): the request body model validates what clients send, and
every model emits the JSON Schema 2020-12 the OpenAPI 3.1 document (app/api/openapi.py) is built from."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core.i18n import N_

# pydantic error types → (our code, zh-CN message)
_TYPE_MESSAGES = {
    "string_type": N_("该字段必须是字符串"),
    "float_type": N_("该字段必须是数字"),
    "finite_number": N_("该字段必须是数字"),
    "bool_type": N_("该字段必须是 true 或 false"),
}


REQUIRED = ("category", "community", "address", "description", "contact_name", "contact_phone")


def _mark_required(schema: dict[str, Any]) -> None:
    # Presence is checked by intake (one zh-CN message per field); the document still says what it needs.
    schema["required"] = list(REQUIRED)
    for name in REQUIRED:
        schema["properties"][name] = {
            "type": "string",
            "description": schema["properties"][name]["description"],
        }


class RequestIn(BaseModel):
    """A resident's request as a partner app or the web page sends it (intake checks the content)."""

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra=_mark_required)

    category: str | None = Field(
        None, description="诉求类别编码（/api/v1/categories），必填", examples=["HW-01"]
    )
    community: str | None = Field(
        None, description="社区编码（/api/v1/units），必填", examples=["420102-S1-C1"]
    )
    address: str | None = Field(None, description="详细地址，必填", examples=["幸福小区 3 栋 2 单元"])
    description: str | None = Field(None, description="诉求内容，必填，至少 5 个字")
    contact_name: str | None = Field(None, description="联系人姓名，必填")
    contact_phone: str | None = Field(None, description="11 位大陆手机号，必填", examples=["13812345678"])
    street: str | None = Field(None, description="街道编码（可选，须与社区一致）")
    district: str | None = Field(None, description="区编码（可选，须与街道一致）")
    lat: float | None = Field(None, description="纬度（与 lng 同时提供）")
    lng: float | None = Field(None, description="经度（与 lat 同时提供）")
    anonymous: bool | None = Field(None, description="是否匿名")


class FieldError(BaseModel):
    """One problem: the field (null for the whole request), a machine code and a zh-CN message."""

    field: str | None
    code: str
    message: str


class Errors(BaseModel):
    """Every error response of the API."""

    errors: list[FieldError]


class UnitRef(BaseModel):
    """A unit by code and name."""

    code: str
    name: str


class CaseSummary(BaseModel):
    """A case's state, current unit and deadline (times in UTC, ISO 8601 with Z)."""

    tracking_number: str
    state: str
    state_label: str
    category: str
    community: str
    current_unit: UnitRef | None
    handling_level: str | None
    deadline: str | None
    deadline_provisional: bool
    created_at: str


class CaseCreated(CaseSummary):
    """The answer to a submission: the summary and the resident's private token."""

    token: str


class CaseEventOut(BaseModel):
    """One step of a case, told in plain Chinese."""

    action: str
    at: str
    text: str


class CaseDetail(CaseSummary):
    """A case for its token holder, a partner key or staff who may see it (contacts masked by viewer)."""

    address: str
    description: str
    contact_name: str
    contact_phone: str
    events: list[CaseEventOut]


class CategoryOut(BaseModel):
    """One catalogue entry."""

    code: str
    name: str
    group: str
    department: str | None
    default_level: str
    default_level_label: str
    urgency: str
    sign_for_hours: float
    resolution_limit: float
    resolution_unit: str


class UnitOut(BaseModel):
    """One place of the unit tree."""

    code: str
    name: str
    level: str
    kind: str


MODELS: tuple[type[BaseModel], ...] = (
    RequestIn,
    FieldError,
    Errors,
    UnitRef,
    CaseSummary,
    CaseCreated,
    CaseEventOut,
    CaseDetail,
    CategoryOut,
    UnitOut,
)


def read_request(body: Any) -> tuple[RequestIn | None, list[dict[str, Any]]]:
    """Validate a JSON body against :class:`RequestIn`: the model, or the errors in the API's shape."""
    if not isinstance(body, dict):
        return None, [{"field": "", "code": "invalid", "message": N_("请求体必须是 JSON 对象")}]
    try:
        return RequestIn.model_validate(body), []
    except ValidationError as exc:
        errors = []
        for problem in exc.errors():
            field = str(problem["loc"][0]) if problem["loc"] else ""
            if problem["type"] == "extra_forbidden":
                errors.append({"field": field, "code": "unknown_field", "message": N_("不支持的字段")})
            else:
                message = _TYPE_MESSAGES.get(problem["type"], N_("该字段的类型不正确"))
                errors.append({"field": field, "code": "invalid", "message": message})
        return None, errors
