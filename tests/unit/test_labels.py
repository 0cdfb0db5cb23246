"""The evaluator pages' one label table."""

from assessment.labels import label


def test_raw_keys_read_in_chinese() -> None:
    assert label("overall") == "总体满意度"
    assert label("indicator") == "满意度指标" and label("question") == "问卷题目"
    assert label("department") == "职能部门" and label("community") == "社区" and label("street") == "街道"
    assert label("case:return_rate") == "诉求数据：退单率"
    assert label("case:composite") == "诉求数据：三率综合"
    assert label("survey:*") == "问卷调查：总体满意度指数"
    assert (
        label("survey:q_activity", {"q_activity": "社区活动 · 参加过社区活动吗"})
        == "问卷调查：社区活动 · 参加过社区活动吗"
    )
    assert label("entry:check") == "考评录入：录入项 check"
    assert label("ahp") == "层次分析法"


def test_unknown_keys_stay_as_they_are() -> None:
    assert label("q_unknown") == "q_unknown"
    assert label("bad:thing") == "bad:thing"
    assert label(None) == ""
