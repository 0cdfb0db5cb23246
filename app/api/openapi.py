"""The OpenAPI 3.1 document of the JSON API v1, built from the pydantic schemas that validate requests,
served at ``/api/v1/openapi.json`` with a readable page at ``/api/v1/docs``."""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic.json_schema import models_json_schema

from app.api.schemas import MODELS, CaseCreated, CaseDetail, CategoryOut, Errors, RequestIn, UnitOut

REF = "#/components/schemas/{model}"


def _ref(model: type) -> dict[str, str]:
    return {"$ref": REF.format(model=model.__name__)}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(_ref(Errors), description)


ERRORS = {
    "400": _error("请求体不是合法的 JSON、嵌套层数过多，或参数含有控制字符"),
    "401": _error("未提供查询凭证（token）且未登录"),
    "403": _error("X-Api-Key 无效、已吊销或无此权限"),
    "404": _error("记录不存在（或 token 与编号不符）"),
    "409": _error("Idempotency-Key 已用于另一条不同的诉求"),
    "413": _error("请求体过大"),
    "415": _error("Content-Type 不是 application/json"),
    "422": _error("字段类型或内容不符合受理规则；errors 列出每个问题"),
    "429": _error("请求过于频繁：该 X-Api-Key 的频率限制，或每个地址的 API_LIMIT"),
}
API_KEY = {"in": "header", "name": "X-Api-Key", "required": False, "schema": {"type": "string"}}


def _query(name: str, description: str, kind: str = "string", required: bool = False) -> dict[str, Any]:
    return {
        "in": "query",
        "name": name,
        "required": required,
        "description": description,
        "schema": {"type": kind},
    }


def _errors(*codes: str) -> dict[str, Any]:
    return {code: ERRORS[code] for code in codes}


@cache
def document() -> dict[str, Any]:
    """The whole document (built once per process)."""
    _keys, definitions = models_json_schema([(m, "validation") for m in MODELS], ref_template=REF)
    return {
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {
            "title": "民呼我应 JSON API",
            "version": "1",
            "description": "诉求受理、查询进度、诉求类别与单位树。合作方凭 X-Api-Key 调用；居民凭私密 token 查询。"
            " 标准 Open311 GeoReport v2 接口见 /open311/v2/discovery.json。",
        },
        "servers": [{"url": "/"}],
        "components": {
            "schemas": definitions["$defs"],
            "securitySchemes": {
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-Api-Key"},
                "caseToken": {"type": "apiKey", "in": "header", "name": "X-Case-Token"},
            },
        },
        "paths": {
            "/api/v1/requests": {
                "post": {
                    "operationId": "createRequest",
                    "summary": "提交诉求",
                    "parameters": [
                        API_KEY,
                        {
                            "in": "header",
                            "name": "Idempotency-Key",
                            "required": False,
                            "schema": {"type": "string", "maxLength": 80},
                        },
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref(RequestIn)}},
                    },
                    "responses": {
                        "201": _json(_ref(CaseCreated), "已受理：编号与私密 token"),
                        "200": _json(_ref(CaseCreated), "同一 Idempotency-Key 的重复提交：原诉求"),
                        **_errors("400", "403", "409", "413", "415", "422", "429"),
                    },
                }
            },
            "/api/v1/requests/{tracking_number}": {
                "get": {
                    "operationId": "getRequest",
                    "summary": "查询诉求进度",
                    "parameters": [
                        {
                            "in": "path",
                            "name": "tracking_number",
                            "required": True,
                            "schema": {"type": "string"},
                        },
                        {"in": "query", "name": "token", "required": False, "schema": {"type": "string"}},
                        {
                            "in": "header",
                            "name": "X-Case-Token",
                            "required": False,
                            "schema": {"type": "string"},
                        },
                        API_KEY,
                    ],
                    "responses": {
                        "200": _json(_ref(CaseDetail), "诉求的状态、承办单位、时限与办理过程"),
                        **_errors("400", "401", "403", "404", "429"),  # 429: the key's or the API's limit
                    },
                }
            },
            "/api/v1/categories": {
                "get": {
                    "operationId": "listCategories",
                    "summary": "诉求类别",
                    "responses": {
                        "200": _json({"type": "array", "items": _ref(CategoryOut)}, "启用的诉求类别")
                    },
                }
            },
            "/api/v1/units": {
                "get": {
                    "operationId": "listUnits",
                    "summary": "下级单位",
                    "parameters": [
                        {"in": "query", "name": "parent", "required": False, "schema": {"type": "string"}}
                    ],
                    "responses": {
                        "200": _json(
                            {"type": "array", "items": _ref(UnitOut)}, "parent 的下级单位（缺省为各区）"
                        ),
                        **_errors("400", "404", "429"),
                    },
                }
            },
            "/api/v1/topics": {
                "get": {
                    "operationId": "listTopics",
                    "summary": "社区议题（五步议事）",
                    "parameters": [
                        _query("community", "社区编码"),
                        _query("stage", "raise | discuss | decide | carry_out | evaluate"),
                        _query("limit", "最多返回条数（默认 50）", kind="integer"),
                    ],
                    "responses": {
                        "200": _json({"type": "array", "items": {"type": "object"}}, "议题及其所处步骤"),
                        **_errors("400", "422", "429"),
                    },
                }
            },
            "/api/v1/topics/{topic_id}": {
                "get": {
                    "operationId": "getTopic",
                    "summary": "一个议题：步骤、关联诉求编号、表决结果、项目进度与评价",
                    "parameters": [
                        {"in": "path", "name": "topic_id", "required": True, "schema": {"type": "integer"}}
                    ],
                    "responses": {
                        "200": _json({"type": "object"}, "议题详情"),
                        **_errors("400", "404", "429"),
                    },
                }
            },
            "/api/v1/duplicates": {
                "get": {
                    "operationId": "possibleDuplicates",
                    "summary": "提交前：同社区同类别的相似未办结诉求",
                    "parameters": [
                        _query("category", "诉求类别编码"),
                        _query("community", "社区编码"),
                        _query("description", "正在填写的描述"),
                    ],
                    "responses": {
                        "200": _json({"type": "object"}, "possible_duplicates：编号、状态、“我也遇到了”人数"),
                        **_errors("400", "429"),
                    },
                }
            },
            "/api/v1/places/suggest": {
                "get": {
                    "operationId": "suggestPlace",
                    "summary": "由地图坐标推荐所在社区（按导入的社区边界）",
                    "parameters": [
                        _query("lat", "纬度", kind="number", required=True),
                        _query("lng", "经度", kind="number", required=True),
                    ],
                    "responses": {
                        "200": _json({"type": "object"}, "community 为 null 表示不在任何已导入边界内"),
                        **_errors("400", "422", "429"),
                    },
                }
            },
            "/api/v1/places/addresses": {
                "get": {
                    "operationId": "knownAddresses",
                    "summary": "地址自动补全：本社区已有诉求的地址",
                    "parameters": [_query("community", "社区编码"), _query("q", "地址开头")],
                    "responses": {
                        "200": _json({"type": "array", "items": {"type": "string"}}, "地址"),
                        **_errors("400", "429"),
                    },
                }
            },
            "/api/v1/openapi.json": {
                "get": {
                    "operationId": "openapiDocument",
                    "summary": "本文档",
                    "responses": {
                        "200": _json({"type": "object"}, "OpenAPI 3.1 文档"),
                        **_errors("400", "429"),
                    },
                }
            },
            "/api/v1/docs": {
                "get": {
                    "operationId": "apiDocs",
                    "summary": "本文档的网页版",
                    "responses": {
                        "200": {
                            "description": "网页",
                            "content": {"text/html": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
        },
    }
