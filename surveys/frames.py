"""Database → DataFrame for survey analysis, aggregating in SQL first.

Reading a million answer rows into pandas costs seconds and hundreds of MiB; the per-community index needs
only sufficient statistics (n, Σx, Σx²) per group, which SQL computes in one pass. The interval is then
the same Student-t interval as :func:`surveys.stats.mean_t_interval` (unweighted): mean ± t(0.975, n−1)·s/√n
with s² = (Σx² − (Σx)²/n)/(n − 1). Scores are the 0–100 mapping of :func:`surveys.stats.likert_to_index`:
(x − 1)/4·100; "不了解/不适用" answers are not rows of the statistic at all.

Result levels of :func:`community_results` (long format, one row per community × level × code):
- ``question``: code = question name; n = answers; index = mean item score;
- ``indicator``: code = indicator code; n = respondents; index = mean of each respondent's mean over the
  items mapped to that indicator;
- ``overall``: code = ""; n = respondents; index = mean of respondent scores (the satisfaction index of
  :func:`surveys.stats.satisfaction_index`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps
from sqlalchemy import Float, and_, cast, func, select, text
from sqlalchemy.orm import Session

from core.i18n import N_
from core.models import Unit
from core.quarter import Quarter
from surveys.definitions import SurveyError
from surveys.models import (
    Answer,
    Question,
    QuestionKind,
    ResponseStatus,
    Survey,
    SurveyResponse,
    SurveySection,
    SurveyStatus,
)
from surveys.stats import (
    StatsError,
    bounded_interval,
    compare_quarters,
    cronbach_alpha,
    rake,
    wilson_interval_array,
    z_value,
)

RESULT_COLUMNS = ["community_code", "community_name", "level", "code", "n", "index", "sd", "low", "high"]
SATISFACTION_VALUES = ("satisfied", "basically_satisfied", "dissatisfied")
LIKERT_POINTS = 5
CHANGE_COLUMNS = [
    "n_prev",
    "n_curr",
    "mean_prev",
    "mean_curr",
    "change",
    "p_value",
    "p_adjusted",
    "significant",
]


def _quarter(quarter: str | Quarter) -> str:
    return str(quarter if isinstance(quarter, Quarter) else Quarter.parse(quarter))


def _score() -> Any:
    """SQL expression of the 0–100 score of a likert answer."""
    return (cast(Answer.value_num, Float) - 1.0) * (100.0 / (LIKERT_POINTS - 1))


def _likert_filter(quarter: str) -> Any:
    return and_(
        Survey.quarter == quarter,
        Survey.status != SurveyStatus.draft,
        SurveyResponse.status == ResponseStatus.accepted,
        Question.kind == QuestionKind.likert5,
        Answer.dont_know.is_(False),
        Answer.value_num.is_not(None),
    )


def _joined(query: Any) -> Any:
    return (
        query.select_from(Answer)
        .join(Question, Question.id == Answer.question_id)
        .join(SurveyResponse, SurveyResponse.id == Answer.response_id)
        .join(Survey, Survey.id == SurveyResponse.survey_id)
    )


def intervals_from_sums(
    n: Any, total: Any, total_sq: Any, confidence: float = 0.95
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Vectorised mean, sd, and t-interval bounds from counts, sums and sums of squares (NaN when n < 2)."""
    n_arr = np.asarray(n, dtype=float)
    s_arr = np.asarray(total, dtype=float)
    q_arr = np.asarray(total_sq, dtype=float)
    z_value(confidence)  # validates the confidence level with the stats module's own error
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = s_arr / n_arr
        var = np.clip((q_arr - s_arr * s_arr / n_arr) / (n_arr - 1.0), 0.0, None)
        sd = np.where(n_arr >= 2, np.sqrt(var), np.nan)
        t = np.where(n_arr >= 2, sps.t.ppf(0.5 + confidence / 2.0, np.maximum(n_arr - 1.0, 1.0)), np.nan)
        half = t * sd / np.sqrt(n_arr)
    low, high = bounded_interval(mean, half)  # the index is 0–100: a t interval on the logit scale
    return mean, sd, low, high


def summarise(groups: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Add index, sd, low, high to a frame with columns n, total, total_sq (drops the sums)."""
    mean, sd, low, high = intervals_from_sums(groups["n"], groups["total"], groups["total_sq"], confidence)
    out = groups.drop(columns=["total", "total_sq"]).copy()
    out["n"] = out["n"].astype("int64")
    out["index"], out["sd"], out["low"], out["high"] = mean, sd, low, high
    return out


def index_from_answers(answers: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """The analysis path on an in-memory long frame (community_code, respondent, question, value 1..5/NaN).

    Returns the ``question`` and ``overall`` levels of :func:`community_results` (without names); the
    database path computes the same sums in SQL.
    """
    frame = answers.loc[answers["value"].notna(), ["community_code", "respondent", "question", "value"]]
    score = (frame["value"].to_numpy(dtype=float) - 1.0) * (100.0 / (LIKERT_POINTS - 1))
    frame = frame.assign(score=score, score_sq=score * score)
    by_question = (
        frame.groupby(["community_code", "question"], sort=True, observed=True)
        .agg(n=("score", "size"), total=("score", "sum"), total_sq=("score_sq", "sum"))
        .reset_index()
        .rename(columns={"question": "code"})
        .assign(level="question")
    )
    respondent = frame.groupby(["community_code", "respondent"], sort=False, observed=True)["score"].mean()
    resp = respondent.reset_index()
    resp["score_sq"] = resp["score"] * resp["score"]
    overall = (
        resp.groupby("community_code", sort=True, observed=True)
        .agg(n=("score", "size"), total=("score", "sum"), total_sq=("score_sq", "sum"))
        .reset_index()
        .assign(level="overall", code="")
    )
    both = pd.concat([by_question, overall], ignore_index=True)
    return summarise(both, confidence)[["community_code", "level", "code", "n", "index", "sd", "low", "high"]]


def _tune_for_aggregation(session: Session) -> None:
    """On PostgreSQL, size this transaction for one large hash aggregate over a quarter's answers.

    With the defaults (JIT on, 4 MB work_mem) the aggregate spills to disk and spends seconds compiling;
    measured on 1 M answers: 21.7 s → 11.6 s. ``SET LOCAL`` ends with the transaction.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL jit = off"))
        session.execute(text("SET LOCAL work_mem = '64MB'"))


def _sums(session: Session, quarter: str) -> pd.DataFrame:
    """n, Σ, Σ² per community and level in two scans of the answers.

    Scan 1 groups by community × question. Scan 2 groups by respondent × indicator (count and sum of item
    scores, a few rows per respondent); the indicator level (mean per respondent and indicator) and the
    overall level (Σ sums / Σ counts per respondent) are then summed per community in pandas.
    """
    _tune_for_aggregation(session)
    score = _score()
    base = _likert_filter(quarter)
    per_question = (
        _joined(
            select(
                SurveyResponse.community_id,
                Question.name,
                func.count(),
                func.sum(score),
                func.sum(score * score),
            )
        )
        .where(base)
        .group_by(SurveyResponse.community_id, Question.name)
    )
    questions = pd.DataFrame(
        session.execute(per_question).all(), columns=["community_id", "code", "n", "total", "total_sq"]
    ).assign(level="question")
    per_respondent = (
        _joined(
            select(
                SurveyResponse.id,
                SurveyResponse.community_id,
                Question.indicator_code,
                func.count(),
                func.sum(score),
            )
        )
        .where(base)
        .group_by(SurveyResponse.id, SurveyResponse.community_id, Question.indicator_code)
    )
    parts = pd.DataFrame(
        session.execute(per_respondent).all(), columns=["response_id", "community_id", "code", "count", "sum"]
    )
    indicator = parts.loc[parts["code"] != ""].assign(s=lambda f: f["sum"] / f["count"])
    overall = parts.groupby(["response_id", "community_id"], sort=False)[["count", "sum"]].sum().reset_index()
    overall = overall.assign(s=overall["sum"] / overall["count"], code="")
    levels = []
    for level, frame in (("indicator", indicator), ("overall", overall)):
        grouped = (
            frame.assign(s2=frame["s"] * frame["s"])
            .groupby(["community_id", "code"], sort=False)
            .agg(n=("s", "size"), total=("s", "sum"), total_sq=("s2", "sum"))
            .reset_index()
            .assign(level=level)
        )
        levels.append(grouped)
    frames = [f for f in (questions, *levels) if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else questions


def _respondent_query(quarter: str) -> Any:
    return (
        _joined(
            select(
                SurveyResponse.id.label("response_id"),
                SurveyResponse.community_id.label("community_id"),
                func.avg(_score()).label("score"),
            )
        )
        .where(_likert_filter(quarter))
        .group_by(SurveyResponse.id, SurveyResponse.community_id)
    )


def community_results(session: Session, quarter: str | Quarter, confidence: float = 0.95) -> pd.DataFrame:
    """Per community × (question | indicator | overall): n, index 0–100, sd, t-interval low/high."""
    sums = _sums(session, _quarter(quarter))
    if sums.empty:
        return pd.DataFrame(
            {
                c: pd.Series(dtype="float64" if c in ("index", "sd", "low", "high") else None)
                for c in RESULT_COLUMNS
            }
        ).astype({"n": "int64"})
    names = pd.DataFrame(
        session.execute(
            select(Unit.id, Unit.code, Unit.name).where(Unit.id.in_(sums["community_id"].unique().tolist()))
        ).all(),
        columns=["community_id", "community_code", "community_name"],
    )
    merged = sums.merge(names, on="community_id").drop(columns=["community_id"])
    out = summarise(merged, confidence)[RESULT_COLUMNS]
    order = {"overall": 0, "indicator": 1, "question": 2}
    out = out.assign(_o=out["level"].map(order)).sort_values(["community_code", "_o", "code"])
    return out.drop(columns="_o").reset_index(drop=True)


def respondent_scores(session: Session, quarter: str | Quarter) -> pd.DataFrame:
    """One row per respondent of the quarter: response_id, community_code, score (mean answered item)."""
    sub = _respondent_query(_quarter(quarter)).subquery()
    rows = session.execute(
        select(sub.c.response_id, Unit.code, sub.c.score).join(Unit, Unit.id == sub.c.community_id)
    ).all()
    return pd.DataFrame(rows, columns=["response_id", "community_code", "score"])


def quarter_change(
    session: Session, quarter: str | Quarter, correction: str = "fdr_bh", alpha: float = 0.05
) -> pd.DataFrame:
    """Per-community change of the index against the previous quarter: Welch t test, BH-corrected."""
    current = Quarter.parse(_quarter(quarter))
    prev = respondent_scores(session, current.previous())
    curr = respondent_scores(session, current)
    if prev.empty or curr.empty:
        return pd.DataFrame(columns=CHANGE_COLUMNS)
    return compare_quarters(
        prev, curr, "community_code", "score", "welch", alpha, "holm" if correction == "holm" else "fdr_bh"
    )


def quarter_series(
    session: Session, quarters: Sequence[str | Quarter], confidence: float = 0.95
) -> pd.DataFrame:
    """The all-respondent index per quarter (quarter, n, index, sd, low, high) for trend lines."""
    rows = []
    for q in quarters:
        scores = respondent_scores(session, q)["score"].to_numpy(dtype=float)
        rows.append(
            {
                "quarter": _quarter(q),
                "n": scores.size,
                "total": scores.sum(),
                "total_sq": float(np.square(scores).sum()),
            }
        )
    return summarise(pd.DataFrame(rows, columns=["quarter", "n", "total", "total_sq"]), confidence)


def answers_frame(
    session: Session, quarter: str | Quarter | None = None, survey_id: int | None = None
) -> pd.DataFrame:
    """Every stored answer, long: response_id, survey_id, community_code, source, age_band, gender,
    district_code, question, kind, indicator_code, value_num, value_text, dont_know."""
    if quarter is None and survey_id is None:
        raise SurveyError("bad_filter", "需要指定季度或问卷")
    query = (
        select(
            SurveyResponse.id,
            SurveyResponse.survey_id,
            Unit.code,
            SurveyResponse.source,
            SurveyResponse.age_band,
            SurveyResponse.gender,
            SurveyResponse.district_code,
            Question.name,
            Question.kind,
            Question.indicator_code,
            Answer.value_num,
            Answer.value_text,
            Answer.dont_know,
        )
        .select_from(Answer)
        .join(Question, Question.id == Answer.question_id)
        .join(SurveyResponse, SurveyResponse.id == Answer.response_id)
        .join(Survey, Survey.id == SurveyResponse.survey_id)
        .join(Unit, Unit.id == SurveyResponse.community_id)
        .where(SurveyResponse.status == ResponseStatus.accepted)
        .order_by(SurveyResponse.id, Question.position)
    )
    if quarter is not None:
        query = query.where(Survey.quarter == _quarter(quarter))
    if survey_id is not None:
        query = query.where(Survey.id == survey_id)
    columns = [
        "response_id",
        "survey_id",
        "community_code",
        "source",
        "age_band",
        "gender",
        "district_code",
        "question",
        "kind",
        "indicator_code",
        "value_num",
        "value_text",
        "dont_know",
    ]
    frame = pd.DataFrame(session.execute(query).all(), columns=columns)
    frame["kind"] = frame["kind"].astype(str)
    return frame


def callback_summary(ratings: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Callback (回访) ratings by community and category: n rated, satisfaction rate with Wilson interval.

    ``ratings`` has columns community_code, category_code, satisfaction (satisfied, basically_satisfied,
    dissatisfied, or empty when not rated) and solved (bool or empty). Satisfaction rate = (satisfied +
    basically satisfied) / rated, as in PRODUCT.md; solved rate = solved / answered the solved question.
    """
    missing = [c for c in ("community_code", "category_code", "satisfaction", "solved") if c not in ratings]
    if missing:
        raise SurveyError("missing_column", "回访数据缺少列：" + "、".join(missing))
    rated = ratings.loc[ratings["satisfaction"].notna() & (ratings["satisfaction"].astype(str) != "")]
    bad = sorted(set(rated["satisfaction"].astype(str)) - set(SATISFACTION_VALUES))
    if bad:
        raise SurveyError("bad_satisfaction", "未知的满意度取值：" + "、".join(bad))
    columns = [
        "community_code",
        "category_code",
        "n",
        "satisfied",
        "rate",
        "low",
        "high",
        "solved_n",
        "solved",
        "solved_rate",
    ]
    if rated.empty:
        return pd.DataFrame(columns=columns)
    solved = rated["solved"].astype("boolean")
    frame = pd.DataFrame(
        {
            "community_code": rated["community_code"].astype(str),
            "category_code": rated["category_code"].astype(str),
            "ok": rated["satisfaction"].isin(["satisfied", "basically_satisfied"]).astype(int),
            "solved_known": solved.notna().astype(int),
            "solved_yes": solved.fillna(False).astype(int),
        }
    )
    grouped = (
        frame.groupby(["community_code", "category_code"], sort=True)
        .agg(
            n=("ok", "size"),
            satisfied=("ok", "sum"),
            solved_n=("solved_known", "sum"),
            solved=("solved_yes", "sum"),
        )
        .reset_index()
    )
    low, high = wilson_interval_array(grouped["satisfied"], grouped["n"], confidence)
    grouped["rate"] = grouped["satisfied"] / grouped["n"]
    grouped["low"], grouped["high"] = low, high
    with np.errstate(divide="ignore", invalid="ignore"):
        grouped["solved_rate"] = np.where(
            grouped["solved_n"] > 0, grouped["solved"] / grouped["solved_n"], np.nan
        )
    return grouped[columns]


def results_export_frame(results: pd.DataFrame) -> pd.DataFrame:
    """Results with Chinese column headings for CSV/XLSX export."""
    labels = {
        "community_code": "社区代码",
        "community_name": "社区",
        "level": "层级",
        "code": "题目/指标",
        "n": "样本数",
        "index": "满意度指数",
        "sd": "标准差",
        "low": "95%下限",
        "high": "95%上限",
    }
    level_labels = {"overall": "总体", "indicator": "指标", "question": "题目"}
    out = results.assign(level=results["level"].map(level_labels))
    for column in ("index", "sd", "low", "high"):
        out[column] = out[column].astype(float).round(2)
    return out.rename(columns=labels)


# ------------------------------------------------------------------------------------------------ weighting

# Margin dimension → respondent column (the district margin is matched on the respondent's district code).
MARGIN_FIELDS = {"age_band": "age_band", "gender": "gender", "district": "district_code"}
DIMENSION_LABELS = {"age_band": N_("年龄段"), "gender": N_("性别"), "district": N_("区")}
UNANSWERED = "（未填写）"
WEIGHTED_COLUMNS = [
    "community_code",
    "community_name",
    "n",
    "index",
    "low",
    "high",
    "w_index",
    "w_low",
    "w_high",
    "n_eff",
]


def survey_respondents(session: Session, survey_id: int) -> pd.DataFrame:
    """One row per respondent of a survey with a likert answer: response_id, community_code,
    community_name, age_band, gender, district_code, score (mean answered item, 0–100)."""
    sub = (
        _joined(
            select(
                SurveyResponse.id.label("response_id"),
                SurveyResponse.community_id.label("community_id"),
                func.avg(_score()).label("score"),
            )
        )
        .where(
            Survey.id == survey_id,
            SurveyResponse.status == ResponseStatus.accepted,
            Question.kind == QuestionKind.likert5,
            Answer.dont_know.is_(False),
            Answer.value_num.is_not(None),
        )
        .group_by(SurveyResponse.id, SurveyResponse.community_id)
        .subquery()
    )
    rows = session.execute(
        select(
            sub.c.response_id,
            Unit.code,
            Unit.name,
            SurveyResponse.age_band,
            SurveyResponse.gender,
            SurveyResponse.district_code,
            sub.c.score,
        )
        .join(Unit, Unit.id == sub.c.community_id)
        .join(SurveyResponse, SurveyResponse.id == sub.c.response_id)
        .order_by(sub.c.response_id)
    ).all()
    columns = [
        "response_id",
        "community_code",
        "community_name",
        "age_band",
        "gender",
        "district_code",
        "score",
    ]
    frame = pd.DataFrame(rows, columns=columns)
    frame["score"] = frame["score"].astype(float)
    return frame


def rake_respondents(
    respondents: pd.DataFrame, margins: Mapping[str, Mapping[str, float]]
) -> tuple[pd.Series | None, str]:
    """Raking weights of respondents to population margins, or (None, the zh-CN reason) to fall back.

    A respondent who left a weighting field blank (the fields are optional) stays in the cell
    "（未填写）", whose target is its own sample share: the population shares are spread over the
    respondents who answered, so blanks neither gain nor lose weight. The raking itself is
    :func:`surveys.stats.rake`; a margin category with no respondent, a respondent category the margins
    lack, or no convergence gives no weights and the reason.
    """
    if respondents.empty:
        return None, "没有有效答卷，无法加权。"
    if not margins:
        return None, "尚未上传总体边际分布。"
    sample = pd.DataFrame(index=respondents.index)
    targets: dict[str, pd.Series] = {}
    for dimension, population in margins.items():
        label = DIMENSION_LABELS.get(dimension, dimension)
        values = respondents[MARGIN_FIELDS[dimension]].fillna("").astype(str)
        blank = values == ""
        shares = pd.Series(dict(population), dtype=float)
        shares = shares / shares.sum()
        missing = float(blank.mean())
        if missing >= 1.0:
            return None, f"所有受访者都未填写{label}，无法按{label}加权。"
        absent = [c for c in shares.index if shares[c] > 0 and not (values == c).any()]
        if absent:
            return None, f"{label}“{'、'.join(absent[:5])}”在样本中没有受访者，无法加权，以下为未加权结果。"
        extra = sorted(set(values[~blank]) - set(shares.index))
        if extra:
            return None, f"样本中的{label}“{'、'.join(extra[:5])}”不在上传的边际分布中，无法加权。"
        target = shares * (1.0 - missing)
        if missing > 0:
            target[UNANSWERED] = missing
        sample[dimension] = values.where(~blank, UNANSWERED)
        targets[dimension] = target
    try:
        weights = rake(sample, targets)
    except StatsError as error:
        if error.code == "not_converged":
            return None, "加权迭代未收敛（各边际分布可能相互矛盾），以下为未加权结果。"
        return None, f"无法加权：{error.message}"
    return weights, ""


def _weighted_t(frame: pd.DataFrame, weight: str, confidence: float) -> pd.DataFrame:
    """Per community: weighted mean, Kish n_eff and the t interval of :func:`surveys.stats.mean_t_interval`."""
    w = frame[weight].to_numpy(dtype=float)
    x = frame["score"].to_numpy(dtype=float)
    parts = pd.DataFrame(
        {"community_code": frame["community_code"], "w": w, "w2": w * w, "wx": w * x, "wxx": w * x * x}
    )
    g = parts.groupby("community_code", sort=True).sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = g["wx"] / g["w"]
        n_eff = g["w"] ** 2 / g["w2"]
        # Σw(x − mean)² = Σwx² − Σw·mean²; clipped at 0 against rounding for constant groups.
        var = np.clip(g["wxx"] / g["w"] - mean * mean, 0.0, None) * n_eff / (n_eff - 1.0)
        ok = n_eff > 1.0 + 1e-12
        t = np.where(ok, sps.t.ppf(0.5 + confidence / 2.0, np.where(ok, n_eff - 1.0, 1.0)), np.nan)
        half = t * np.sqrt(var / n_eff)
    low, high = bounded_interval(mean, half)
    return pd.DataFrame({"index": mean, "low": low, "high": high, "n_eff": n_eff}, index=g.index)


@dataclass
class WeightedResults:
    """Per-community index of one survey, unweighted and (when possible) raked to population margins."""

    table: pd.DataFrame
    weighted: bool
    reason: str = ""
    margins: dict[str, dict[str, float]] = field(default_factory=dict)


def weighted_results(
    session: Session,
    survey_id: int,
    margins: Mapping[str, Mapping[str, float]],
    confidence: float = 0.95,
) -> WeightedResults:
    """Unweighted and raked satisfaction index per community of a survey (columns WEIGHTED_COLUMNS).

    Weights are raked over all the survey's respondents (the margins describe the city), then each
    community's index is the weighted mean of its respondents' scores with a t interval on Kish's
    effective n (as :func:`surveys.stats.mean_t_interval`). Without usable weights the w_* columns repeat
    the unweighted figures, ``weighted`` is False and ``reason`` says why in Chinese.
    """
    z_value(confidence)
    respondents = survey_respondents(session, survey_id)
    used = {d: dict(m) for d, m in margins.items()}
    weights, reason = rake_respondents(respondents, used)
    if respondents.empty:
        return WeightedResults(pd.DataFrame(columns=WEIGHTED_COLUMNS), False, reason, used)
    frame = respondents.assign(one=1.0, weight=1.0 if weights is None else weights)
    plain = _weighted_t(frame, "one", confidence)
    raked = _weighted_t(frame, "weight", confidence)
    names = frame.groupby("community_code", sort=True).agg(
        community_name=("community_name", "first"), n=("score", "size")
    )
    table = pd.concat(
        [
            names,
            plain[["index", "low", "high"]],
            raked.rename(columns={"index": "w_index", "low": "w_low", "high": "w_high"}),
        ],
        axis=1,
    ).reset_index()
    return WeightedResults(table[WEIGHTED_COLUMNS], weights is not None, reason, used)


# ----------------------------------------------------------------------------------------------- reliability

RELIABILITY_COLUMNS = ["scope", "title", "items", "n_used", "alpha", "note"]


def reliability(session: Session, survey_id: int) -> pd.DataFrame:
    """Cronbach's alpha of a survey's likert items, for the whole survey and for each section.

    Rows: scope ("survey" | "section"), title, items (k), n_used (respondents answering every item:
    listwise deletion, "不了解/不适用" counts as missing), alpha (NaN when it cannot be computed) and note
    (the Chinese reason then).
    """
    questions = session.execute(
        select(Question.id, Question.name, SurveySection.title)
        .outerjoin(SurveySection, SurveySection.id == Question.section_id)
        .where(Question.survey_id == survey_id, Question.kind == QuestionKind.likert5)
        .order_by(Question.position)
    ).all()
    answers = pd.DataFrame(
        session.execute(
            select(Answer.response_id, Answer.question_id, Answer.value_num)
            .join(SurveyResponse, SurveyResponse.id == Answer.response_id)
            .join(Question, Question.id == Answer.question_id)
            .where(
                SurveyResponse.survey_id == survey_id,
                SurveyResponse.status == ResponseStatus.accepted,
                Question.kind == QuestionKind.likert5,
                Answer.dont_know.is_(False),
            )
        ).all(),
        columns=["response_id", "question_id", "value"],
    )
    wide = answers.pivot_table(index="response_id", columns="question_id", values="value", aggfunc="first")
    wide = wide.reindex(columns=[q.id for q in questions]).astype(float)
    scopes: list[tuple[str, str, list[int]]] = [("survey", "全卷", [q.id for q in questions])]
    sections: dict[str, list[int]] = {}
    for q in questions:
        if q.title:
            sections.setdefault(q.title, []).append(q.id)
    scopes += [("section", title, ids) for title, ids in sections.items()]
    rows = []
    for scope, title, ids in scopes:
        items = wide[ids]
        n_used = int(items.notna().all(axis=1).sum()) if len(ids) else 0
        alpha, note = float("nan"), ""
        if len(ids) < 2:
            note = "量表题少于 2 道，无法计算 Cronbach α。"
        else:
            try:
                alpha = cronbach_alpha(items)
            except StatsError as error:
                note = error.message
        rows.append((scope, title, len(ids), n_used, alpha, note))
    return pd.DataFrame(rows, columns=RELIABILITY_COLUMNS)
