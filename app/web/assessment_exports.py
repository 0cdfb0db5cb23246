"""Evaluator exports on the assessment blueprint: the XLSX ledger (电子台帐), CSV tables, workers' figures and
the printable report."""

from __future__ import annotations

import io
import json
from typing import Any

import pandas as pd
from flask import Response, abort, render_template, request, send_file
from openpyxl import Workbook
from sqlalchemy import select

from app.auth import roles_required
from app.exports import csv_text, safe_row
from app.i18n import TranslatedLabels
from app.web.assessment import KIND_LABELS, STAFF, _db, _quarter, _review_rows, _run_for_view, _tree_rows, bp
from app.web.assessment_casemix import add_ledger_sheet
from app.web.ledgers import add_co_governance_sheets
from app.web.present import local
from assessment import inputs, labels, missing, rankings, services, vocabulary
from assessment.models import ScoringRun
from assessment.vocabulary import COMPOSITE_PARTS
from core.models import LEVEL_LABELS, Level, Unit


def _review_table() -> list[list[Any]]:
    header = [
        "单位编码",
        "单位",
        "类型",
        "项目",
        "项目编码",
        "起始季度",
        "截止季度",
        "阈值",
        "证据",
        "审核结论",
        "审核人",
        "审核时间（北京时间）",
    ]
    rows: list[list[Any]] = [header]
    for item in _review_rows():
        evidence_text = "；".join(f"{e['quarter']}: {e['value']:.1f}（n={e['n']}）" for e in item.evidence)
        rows.append(
            [
                item.unit.code,
                item.unit.name,
                KIND_LABELS.get(item.kind, item.kind),
                item.item_label,
                item.item_code,
                item.quarter_from,
                item.quarter_to,
                item.threshold,
                evidence_text,
                item.decision,
                item.decided_by.display_name if item.decided_by else "",
                local(item.decided_at),  # Beijing time, as on the page
            ]
        )
    return rows


def _csv(rows: list[list[Any]], filename: str) -> Response:
    # Excel opens UTF-8 CSV correctly only with a BOM; csv_text adds it and neutralises formulas.
    return Response(
        csv_text(rows),
        mimetype="text/csv; charset=utf-8",
        headers={"Content-Disposition": f"attachment; filename={filename}"},
    )


@bp.route("/review.csv")
@roles_required(*STAFF)
def review_csv() -> Any:
    """The review list as CSV."""
    return _csv(_review_table(), "review.csv")


# --- exports, workers, report ----------------------------------------------------------------------


def _score_table(run: ScoringRun, level: str) -> list[list[Any]]:
    assert run.system is not None
    frame = services.scores_frame(_db(), run, level)
    nodes = [config["code"] for _, config in _tree_rows(run.system.tree)]
    names = {config["code"]: config["name"] for _, config in _tree_rows(run.system.tree)}
    # One index level only: with dropna=False, a (code, name) index would be their Cartesian product.
    wide = frame.pivot_table(index="unit_code", columns="node_code", values="score", dropna=False)
    unit_names = frame.drop_duplicates("unit_code").set_index("unit_code")["unit_name"]
    ranks = frame[frame["node_code"] == nodes[0]].set_index("unit_code")["rank"]
    changes = frame[frame["node_code"] == nodes[0]].set_index("unit_code")["change"]
    flagged = frame[frame["sample_flag"].fillna("") != ""]
    flag_text = {
        str(code): "；".join(f"{names.get(r.node_code, r.node_code)}：{missing.FLAG_LABELS.get(r.sample_flag, r.sample_flag)}"
                            for r in group.itertuples())
        for code, group in flagged.groupby("unit_code")
    }  # fmt: skip
    header = ["排名", "单位编码", "单位", *[names[c] for c in nodes], "较上季度变化", "样本标记"]
    rows: list[list[Any]] = [header]
    for unit_code, values in wide.iterrows():
        rank = ranks.get(unit_code)
        rows.append(
            [
                None if rank is None or pd.isna(rank) else int(rank),
                unit_code,
                unit_names[unit_code],
                *[_cell(values.get(c)) for c in nodes],
                _cell(changes.get(unit_code)),
                flag_text.get(str(unit_code), ""),
            ]
        )
    rows[1:] = sorted(rows[1:], key=lambda r: (r[0] is None, r[0] or 0, r[1]))
    return rows


def _rates_table(quarter: Any, level: str) -> list[list[Any]]:
    """Each unit's response, resolution and satisfaction: numerator, denominator, rate, Wilson interval, flag."""
    rates = inputs.three_rates(_db(), quarter, level)
    units = dict(_db().execute(select(Unit.id, Unit.code)).all())
    names = dict(_db().execute(select(Unit.id, Unit.name)).all())
    header = ["单位编码", "单位"]
    for rate in COMPOSITE_PARTS:
        label = vocabulary.RATE_BY_KEY[rate].label
        header += [
            f"{label}分子",
            f"{label}分母",
            f"{label}%",
            f"{label}95%下限",
            f"{label}95%上限",
            f"{label}样本",
        ]
    rows: list[list[Any]] = [header]
    for unit_id, r in rates.iterrows():
        row: list[Any] = [units.get(unit_id, ""), names.get(unit_id, "")]
        for rate in COMPOSITE_PARTS:
            row += [int(r[f"{rate}_num"]), int(r[f"{rate}_den"]), _cell(r[rate]), _cell(r[f"{rate}_low"]),
                    _cell(r[f"{rate}_high"]), "样本不足" if r[f"{rate}_small"] else ""]  # fmt: skip
        rows.append(row)
    rows[1:] = sorted(rows[1:], key=lambda r: str(r[0]))
    return rows


def _cell(value: Any) -> float | None:
    if value is None or pd.isna(value):
        return None
    return round(float(value), 4)


@bp.route("/<quarter>/export.xlsx")
@roles_required(*STAFF)
def export_xlsx(quarter: str) -> Any:
    """电子台帐: one sheet per level, the indicator system, the review list."""
    q = _quarter(quarter)
    run = _run_for_view(q)
    assert run.system is not None
    book = Workbook()
    first = book.active
    assert first is not None
    book.remove(first)
    for level in (Level.district, Level.street, Level.community):
        sheet = book.create_sheet(f"{LEVEL_LABELS[level]}得分")
        for row in _score_table(run, level.value):
            sheet.append(safe_row(row))
    sheet = book.create_sheet("指标体系")
    sheet.append(["层级", "编码", "名称", "权重", "评分规则", "数据来源", "数据来源说明"])
    for depth, config in _tree_rows(run.system.tree):
        sheet.append(
            safe_row(
                [
                    depth,
                    config["code"],
                    config["name"],
                    config.get("weight"),
                    json.dumps(config.get("rule"), ensure_ascii=False) if config.get("rule") else "",
                    run.system.sources.get(config["code"], ""),
                    labels.label(run.system.sources.get(config["code"], "")),
                ]
            )
        )
    sheet = book.create_sheet("逐项审核")
    for row in _review_table():
        sheet.append(safe_row(row))
    for level in (Level.district, Level.street, Level.community):
        sheet = book.create_sheet(f"{LEVEL_LABELS[level]}三率")
        for row in _rates_table(q, level.value):
            sheet.append(safe_row(row))
    sheet = book.create_sheet("缺失数据规则")
    sheet.append(["情形", "标记", "计分所用取值", "得分"])
    for policy_row in missing.POLICY_ROWS:
        sheet.append(safe_row(list(policy_row)))
    sheet = book.create_sheet("比率定义")
    sheet.append(["列名", "名称", "分子", "分母"])
    for definition in vocabulary.RATE_DEFINITIONS:
        sheet.append(safe_row(definition[:4]))
    add_ledger_sheet(book, q)
    add_co_governance_sheets(book, q)
    buffer = io.BytesIO()
    book.save(buffer)
    buffer.seek(0)
    return send_file(
        buffer,
        mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        as_attachment=True,
        download_name=f"assessment-{q}.xlsx",
    )


@bp.route("/<quarter>/export.csv")
@roles_required(*STAFF)
def export_csv(quarter: str) -> Any:
    """Community scores of the quarter as CSV (level=district|street|community)."""
    q = _quarter(quarter)
    run = _run_for_view(q)
    level = request.args.get("level", Level.community.value)
    if level not in (Level.district.value, Level.street.value, Level.community.value):
        abort(404)
    return _csv(_score_table(run, level), f"assessment-{q}-{level}.csv")


@bp.route("/<quarter>/workers")
@roles_required(*STAFF)
def workers(quarter: str) -> Any:
    """Community workers' figures per handler: cases handled, on time, satisfaction (CSV with ?format=csv)."""
    q = _quarter(quarter)
    frame = inputs.worker_figures(_db(), q)
    if request.args.get("format") == "csv":
        header = [
            "用户名",
            "姓名",
            "单位编码",
            "单位",
            "办结工单",
            "按时办结",
            "按时办结率%",
            "已评价",
            "满意",
            "满意率%",
        ]
        rows: list[list[Any]] = [header]
        for r in frame.itertuples():
            rows.append(
                [
                    r.username, r.display_name, r.unit_code, r.unit_name, r.handled, r.on_time,
                    _cell(r.on_time_rate), r.rated, r.satisfied, _cell(r.satisfaction_rate),
                ]
            )  # fmt: skip
        return _csv(rows, f"workers-{q}.csv")
    return render_template("assessment/workers.html", quarter=q, rows=frame.to_dict("records"))


@bp.route("/<quarter>/report")
@roles_required(*STAFF)
def report(quarter: str) -> Any:
    """A printable report: districts, streets and communities ranked, with definitions."""
    q = _quarter(quarter)
    run = _run_for_view(q)
    tables = {
        level: _score_table(run, level.value) for level in (Level.district, Level.street, Level.community)
    }
    return render_template(
        "assessment/report.html",
        quarter=q,
        run=run,
        tables=tables,
        LEVEL_LABELS=TranslatedLabels(LEVEL_LABELS),
        definitions=vocabulary.RATE_DEFINITIONS,
        tie_rule=rankings.TIE_RULES.get(run.params.get("tie_rule", "min"), ""),
    )
