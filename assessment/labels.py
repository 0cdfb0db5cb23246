"""One label table for the evaluator pages: every raw key an evaluator could meet (survey result levels,
unit levels and kinds, rates, source kinds, weight methods, ``case:return_rate``-style sources, survey
question codes) → its Chinese label, so no page shows a code without words."""

from __future__ import annotations

from collections.abc import Mapping

from assessment.vocabulary import (
    COMPOSITE,
    RATES,
    SOURCE_KIND_LABELS,
    SURVEY_ALL,
    AssessmentError,
    parse_source,
)
from core.i18n import N_
from core.models import LEVEL_LABELS

LABELS: dict[str, str] = {
    # survey results (surveys.frames): the level of a row
    "overall": N_("总体满意度"),
    "indicator": N_("满意度指标"),
    "question": N_("问卷题目"),
    # unit levels and kinds (core.models)
    **{level.value: label for level, label in LEVEL_LABELS.items()},
    "government": N_("政府"),
    "functional_zone": N_("功能区"),
    "department": N_("职能部门"),
    "utility": N_("公共服务企业"),
    # rates and sources (assessment.vocabulary)
    **{rate.key: rate.label for rate in RATES},
    COMPOSITE: N_("三率综合"),
    SURVEY_ALL: N_("总体满意度指数"),
    **SOURCE_KIND_LABELS,
    # child-weight methods (assessment.weights)
    "direct": N_("直接赋权"),
    "ahp": N_("层次分析法"),
    "entropy": N_("熵权法"),
}


def label(key: object, questions: Mapping[str, str] | None = None) -> str:
    """The Chinese label of a raw key or a ``kind:key`` source (question codes via ``questions``); else the key."""
    text = "" if key is None else str(key)
    if ":" in text:
        try:
            kind, inner = parse_source(text)
        except AssessmentError:
            return text
        if kind == "entry":
            return f"{LABELS[kind]}：{N_('录入项')} {inner}"
        return f"{LABELS[kind]}：{label(inner, questions)}"
    if questions and text in questions:
        return questions[text]
    return LABELS.get(text, text)
