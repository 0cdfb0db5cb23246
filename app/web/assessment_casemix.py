"""The case-mix-adjusted view on the assessment blueprint (类别构成调整): observed beside expected rates,
O/E with exact intervals and bootstrap rank intervals, and its sheet in the XLSX ledger."""

from __future__ import annotations

from typing import Any

import pandas as pd
from flask import render_template, request
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from openpyxl import Workbook
from wtforms import IntegerField, SelectField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import AnyOf, NumberRange, Optional

from app.auth import roles_required
from app.exports import safe_row
from app.i18n import TranslatedLabels
from app.web.assessment import STAFF, _db, _quarter, bp
from app.web.assessment_forms import messages
from assessment import casemix
from assessment.vocabulary import RATE_BY_KEY
from core.models import LEVEL_LABELS, Level
from core.quarter import Quarter

LEVELS = (Level.community, Level.street, Level.district)


class CaseMixForm(FlaskForm):
    """The view's choices (a GET form: no CSRF): rate, level, resamples and seed of the bootstrap."""

    class Meta:
        csrf = False

    rate = SelectField(
        _l("比率"),
        choices=[SelectChoice(key, RATE_BY_KEY[key].label) for key in casemix.ADJUSTED_RATES],
        default="satisfaction_rate",
        validate_choice=False,
        validators=[AnyOf(casemix.ADJUSTED_RATES, _l("类别构成调整只适用于响应率、解决率和满意率"))],
    )
    level = SelectField(
        _l("层级"),
        choices=[SelectChoice(lv.value, LEVEL_LABELS[lv]) for lv in LEVELS],
        default=Level.community.value,
        validate_choice=False,
        validators=[AnyOf([lv.value for lv in LEVELS], _l("层级应为社区、街道或区"))],
    )
    resamples = IntegerField(
        _l("重抽样次数"),
        default=casemix.DEFAULT_RESAMPLES,
        validators=[
            Optional(),
            NumberRange(100, casemix.MAX_RESAMPLES, _l("重抽样次数应在 %(min)s 到 %(max)s 之间")),
        ],
    )
    seed = IntegerField(
        _l("随机种子"),
        default=casemix.DEFAULT_SEED,
        validators=[Optional(), NumberRange(0, 2**32 - 1, _l("随机种子应为 0 到 4294967295 的整数"))],
    )


def _fmt(value: Any, pattern: str) -> str:
    return "—" if value is None or pd.isna(value) else pattern % value


@bp.route("/<quarter>/casemix")
@roles_required(*STAFF)
def casemix_view(quarter: str) -> Any:
    """Case-mix-adjusted rates of one level for the quarter, ranked by O/E with rank intervals."""
    q = _quarter(quarter)
    form = CaseMixForm(formdata=None)
    errors: list[str] = []
    if request.args:
        posted = CaseMixForm(formdata=request.args)
        if posted.validate():
            form = posted
        else:
            errors = messages(posted)
    level = Level(form.level.data)
    resamples = form.resamples.data or casemix.DEFAULT_RESAMPLES
    seed = casemix.DEFAULT_SEED if form.seed.data is None else form.seed.data
    result = casemix.adjusted_tables(_db(), q, level, [form.rate.data], resamples, seed)[form.rate.data]
    table = result.table
    ranked = table[table["rank"].notna()]
    apart = table[table["rank"].isna()]
    return render_template(
        "assessment/casemix.html",
        quarter=q,
        form=form,
        errors=errors,
        result=result,
        rate=RATE_BY_KEY[form.rate.data],
        level=level,
        LEVEL_LABELS=TranslatedLabels(LEVEL_LABELS),
        ranked=ranked.reset_index().to_dict("records"),
        apart=apart.reset_index().to_dict("records"),
        verdicts=casemix.VERDICT_LABELS,
        fmt=_fmt,
        confidence=round((1 - result.alpha) * 100),
    )


LEDGER_HEADER = [
    "层级",
    "比率",
    "名次（O/E 从高到低）",
    "名次区间下限",
    "名次区间上限",
    "单位编码",
    "单位",
    "分母（件）",
    "实际数（O）",
    "预期数（E）",
    "实际率%",
    "预期率%",
    "O/E",
    "O/E 95% 下限",
    "O/E 95% 上限",
    "判断",
]


def ledger_rows(quarter: Quarter) -> list[list[Any]]:
    """The ledger's 类别构成调整 sheet: every level × rate, with the settings of the bootstrap in the header."""
    rows: list[list[Any]] = [LEDGER_HEADER]
    for level in LEVELS:
        tables = casemix.adjusted_tables(_db(), quarter, level)
        for key, result in tables.items():
            for unit_id, r in result.table.iterrows():
                del unit_id
                rows.append(
                    [
                        LEVEL_LABELS[level], RATE_BY_KEY[key].label, _int(r["rank"]), _int(r["rank_low"]),
                        _int(r["rank_high"]), r["unit_code"], r["unit_name"], int(r["cases"]), int(r["observed"]),
                        _num(r["expected"]), _num(r["observed_rate"]), _num(r["expected_rate"]), _num(r["ratio"]),
                        _num(r["ratio_low"]), _num(r["ratio_high"]), str(casemix.VERDICT_LABELS[r["verdict"]]),
                    ]
                )  # fmt: skip
    return rows


def add_ledger_sheet(book: Workbook, quarter: Quarter) -> None:
    """Append the 类别构成调整 sheet (and a note on the method) to the XLSX ledger."""
    sheet = book.create_sheet("类别构成调整")
    for row in ledger_rows(quarter):
        sheet.append(safe_row(row))
    sheet.append([])
    sheet.append(
        [
            f"方法：按诉求类别间接标准化，预期数 = Σ 各类别工单数 × 全市该类别比率；O/E 区间为精确泊松区间；"
            f"名次区间为按单位×类别重抽样 {casemix.DEFAULT_RESAMPLES} 次（随机种子 {casemix.DEFAULT_SEED}）的 95% 区间。"
        ]
    )


def _int(value: Any) -> int | None:
    return None if value is None or pd.isna(value) else int(value)


def _num(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else round(float(value), 4)
