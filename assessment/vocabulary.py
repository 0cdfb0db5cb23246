"""The assessment's one vocabulary: the rate catalogue, source kinds, run and job states, labels, errors.

Every page, export and check reads its names from here, so a rate or a state is spelled once.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.i18n import N_, DomainError
from core.quarter import Quarter
from governance.ledgers import LEDGER_MEASURES, TOPIC_MEASURES


class AssessmentError(DomainError):
    """A refused assessment operation: machine ``code`` and zh-CN message."""


@dataclass(frozen=True)
class Rate:
    """One case-derived rate: its key (column), 名称, what it counts and the count columns behind it."""

    key: str
    label: str
    numerator_label: str
    denominator_label: str
    numerator: str
    denominator: str

    @property
    def proportion(self) -> bool:
        """Whether the rate is a percentage of its denominator (requests per 1,000 residents is not)."""
        return self.key != "requests_per_1000"


# The rate catalogue (percentages 0–100 of the denominator; NaN when the denominator is 0).
RATES: tuple[Rate, ...] = (
    Rate("response_rate", N_("响应率"), N_("按时签收的派单工单数"), N_("派单工单数"), "responded_in_time", "dispatched"),
    Rate("resolution_rate", N_("解决率"), N_("评价为“已解决”的工单数"), N_("已评价工单数"), "solved", "rated"),
    Rate("satisfaction_rate", N_("满意率"), N_("评价为满意或基本满意的工单数"), N_("已评价工单数"), "satisfied", "rated"),
    Rate("on_time_rate", N_("按时办结率"), N_("在办理时限内办结的工单数"), N_("已办结工单数"), "closed_on_time", "resolved"),
    Rate("return_rate", N_("退单率"), N_("至少退单一次的派单工单数"), N_("派单工单数"), "returned", "dispatched"),
    Rate("reopen_rate", N_("重办率"), N_("至少重办一次的已办结工单数"), N_("已办结工单数"), "reopened", "resolved"),
    Rate("requests_per_1000", N_("千人诉求量"), N_("本季度受理工单数（不含被合并的重复件）"), N_("社区常住人口 ÷ 1000"), "requests", "population"),
)  # fmt: skip
RATE_BY_KEY = {rate.key: rate for rate in RATES}
# rate → (label, denominator count column); a view of RATES for the scoring code (sample sizes).
CASE_RATES: dict[str, tuple[str, str]] = {
    rate.key: (rate.label, "requests" if not rate.proportion else rate.denominator) for rate in RATES
}
# (column, 名称, numerator, denominator, numerator count column, denominator count column) of the proportions.
RATE_DEFINITIONS: tuple[tuple[str, str, str, str, str, str], ...] = tuple(
    (r.key, r.label, r.numerator_label, r.denominator_label, r.numerator, r.denominator)
    for r in RATES
    if r.proportion
)
PROPORTION_RATES = frozenset(r.key for r in RATES if r.proportion)
COMPOSITE = "composite"
COMPOSITE_PARTS = ("response_rate", "resolution_rate", "satisfaction_rate")
SURVEY_ALL = "*"
SOURCE_KINDS = ("case", "survey", "entry", "ledger", "topic")
SOURCE_KIND_LABELS = {
    "case": N_("诉求数据"),
    "survey": N_("问卷调查"),
    "entry": N_("考评录入"),
    "ledger": N_("共治台帐"),
    "topic": N_("五步议事"),
}
# Recorded values (no sampling error): evaluators' entries and the co-governance ledgers and topics.
RECORDED_KINDS = ("entry", "ledger", "topic")
CO_GOVERNANCE_MEASURES = {"ledger": LEDGER_MEASURES, "topic": TOPIC_MEASURES}

RULE_KIND_LABELS: dict[str, str] = {
    "linear": N_("线性（区间内按比例得分）"),
    "steps": N_("分档（达到门槛得相应比例）"),
    "deduction": N_("扣分（每项扣分，扣完为止）"),
    "bonus": N_("加分（每项加分，封顶）"),
    "veto": N_("一票否决"),
}
VETO_SCOPE_LABELS = {
    "leaf": N_("仅本项得 0 分"),
    "node": N_("上级指标整体得 0 分"),
    "unit": N_("整个单位总分为 0"),
}

# A scoring run: a draft replaced by each re-run, then published and frozen.
RUN_DRAFT = "draft"
RUN_PUBLISHED = "published"
RUN_STATUS_LABELS = {RUN_DRAFT: N_("草稿"), RUN_PUBLISHED: N_("已发布（结果冻结）")}

# The scoring job's state, kept in ScoringRun.params["job"].
JOB_QUEUED, JOB_RUNNING, JOB_FINISHED, JOB_FAILED = "queued", "running", "finished", "failed"
JOB_STATE_LABELS = {
    JOB_QUEUED: N_("已排队，等待计算"),
    JOB_RUNNING: N_("正在计算"),
    JOB_FINISHED: N_("计算完成"),
    JOB_FAILED: N_("计算失败"),
}

ROLLUP_MODES = ("population", "equal")
ROLLUP_LABELS = {"population": N_("按人口加权"), "equal": N_("等权")}
REVIEW_KINDS = ("survey_item", "case_category")
REVIEW_KIND_LABELS = {"survey_item": N_("问卷题目"), "case_category": N_("诉求类别")}


def parse_source(source: str) -> tuple[str, str]:
    """Split ``"case:response_rate"`` into its kind and key, refusing unknown kinds and rates."""
    kind, sep, key = (source or "").partition(":")
    if not sep or kind not in SOURCE_KINDS or not key.strip():
        raise AssessmentError(
            "bad_source",
            N_(
                "数据来源「{s}」无效，应为 case:<比率>、survey:<题目编码>、entry:<编码>、ledger:<台帐指标> 或 topic:<议事指标>"
            ),
            s=source,
        )
    if kind in CO_GOVERNANCE_MEASURES and key.strip() not in CO_GOVERNANCE_MEASURES[kind]:
        options = "、".join(CO_GOVERNANCE_MEASURES[kind])
        raise AssessmentError(
            "unknown_measure", N_("未知的共治指标「{k}」，可选：{opts}"), k=key, opts=options
        )
    if kind == "case" and key not in CASE_RATES and key != COMPOSITE:
        raise AssessmentError(
            "unknown_rate",
            N_("未知的诉求比率「{k}」，可选：{opts}"),
            k=key,
            opts="、".join([*CASE_RATES, COMPOSITE]),
        )
    return kind, key.strip()


def as_quarter(quarter: Quarter | str) -> Quarter:
    """A Quarter from "2026Q3" (or a Quarter), refusing a bad text with an ``AssessmentError``."""
    if isinstance(quarter, Quarter):
        return quarter
    try:
        return Quarter.parse(quarter)
    except ValueError as exc:
        raise AssessmentError("bad_quarter", N_("季度格式应为 2026Q3")) from exc
