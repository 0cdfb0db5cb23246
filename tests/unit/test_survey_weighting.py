"""Raking respondents to population margins with a fallback reason (pure: in-memory frames only)."""

from __future__ import annotations

import pandas as pd
import pytest

from surveys.frames import rake_respondents


def respondents(rows):
    return pd.DataFrame(rows, columns=["age_band", "gender", "district_code"])


def test_two_margins_on_a_product_form_sample_give_the_hand_worked_weights():
    # Sample cells n(gender, age) = 3, 3, 1, 1 are a product of the gender (¾, ¼) and age (½, ½) shares,
    # so raking converges to (P_gender/p_gender)·(P_age/p_age): targets gender 50/50, age 18-29 25 %, 60+ 75 %:
    # male & 18-29 (0.5/0.75)(0.25/0.5) = 1/3; male & 60+ (2/3)(1.5) = 1; female & 18-29 2·0.5 = 1;
    # female & 60+ 2·1.5 = 3. Total 3·1/3 + 3·1 + 1 + 3 = 8 = n.
    sample = respondents(
        [("18-29", "male", "D")] * 3
        + [("60+", "male", "D")] * 3
        + [("18-29", "female", "D"), ("60+", "female", "D")]
    )
    weights, reason = rake_respondents(
        sample, {"gender": {"male": 500, "female": 500}, "age_band": {"18-29": 0.25, "60+": 0.75}}
    )
    assert reason == "" and weights is not None
    assert weights.tolist() == pytest.approx([1 / 3] * 3 + [1.0] * 3 + [1.0, 3.0])


def test_blank_answers_keep_their_sample_share():
    # Gender blank for 1 of 4: the blank cell keeps ¼ (weight 1); male and female share ¾ as 50/50:
    # each gets 0.375·4 = 1.5 of weight, so the two men 0.75 each and the woman 1.5.
    sample = respondents([("", "male", ""), ("", "male", ""), ("", "female", ""), ("", "", "")])
    weights, reason = rake_respondents(sample, {"gender": {"male": 1, "female": 1}})
    assert reason == "" and weights.tolist() == pytest.approx([0.75, 0.75, 1.5, 1.0])


@pytest.mark.parametrize(
    ("margins", "reason"),
    [
        ({"age_band": {"18-29": 1, "60+": 1}}, "年龄段“60+”在样本中没有受访者"),
        ({"gender": {"male": 1}}, "样本中的性别“female”不在上传的边际分布中"),
        ({"district": {"420102": 1}}, "所有受访者都未填写区"),
        ({}, "尚未上传总体边际分布"),
    ],
)
def test_unusable_margins_give_a_chinese_reason_and_no_weights(margins, reason):
    sample = respondents([("18-29", "male", ""), ("18-29", "female", "")])
    weights, message = rake_respondents(sample, margins)
    assert weights is None and reason in message


def test_contradictory_margins_do_not_converge():
    # Everyone aged 60+ is female and every man is 18-29, so "60+ = 90 %" and "female = 10 %" cannot both hold.
    sample = respondents([("18-29", "male", "")] * 5 + [("60+", "female", "")] * 5)
    weights, message = rake_respondents(
        sample, {"age_band": {"18-29": 0.1, "60+": 0.9}, "gender": {"male": 0.9, "female": 0.1}}
    )
    assert weights is None and "未收敛" in message
