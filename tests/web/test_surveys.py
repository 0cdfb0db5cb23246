"""Survey pages and services: editor, freezing, online and paper collection, progress, results, exports."""

from __future__ import annotations

import io
import math
import re

import pandas as pd
import pytest
from openpyxl import Workbook, load_workbook
from sqlalchemy import func, select

from surveys import frames, services
from surveys.definitions import QuestionSpec, likert_choices
from surveys.models import QuestionKind, Survey, SurveyContact, SurveyResponse, SurveyStatus
from surveys.stats import satisfaction_index
from tests.conftest import login

C1, C2 = "420102-S1-C1", "420102-S1-C2"


def make_survey(session, quarter="2026Q3", title="公共服务满意度", status=SurveyStatus.open):
    """A survey with two likert items (one with 不了解), a single choice, a multiple choice and a text."""
    survey = services.create_survey(session, quarter, title)
    section = services.add_section(session, survey, "社区服务")
    services.add_question(
        session,
        survey,
        QuestionSpec(
            "q_env",
            "环境卫生",
            QuestionKind.likert5,
            True,
            choices=likert_choices(),
            dont_know=True,
            indicator_code="GG-01",
        ),
        section,
    )
    services.add_question(
        session,
        survey,
        QuestionSpec(
            "q_safe",
            "治安状况",
            QuestionKind.likert5,
            False,
            choices=likert_choices(),
            dont_know=True,
            indicator_code="GG-01",
        ),
        section,
    )
    services.add_question(
        session,
        survey,
        QuestionSpec("q_know", "是否知道社区书记", QuestionKind.single, choices=[["y", "是"], ["n", "否"]]),
    )
    services.add_question(
        session,
        survey,
        QuestionSpec(
            "q_need",
            "最需要的服务",
            QuestionKind.multiple,
            choices=[["a", "养老"], ["b", "托育"], ["c", "停车"]],
        ),
    )
    services.add_question(session, survey, QuestionSpec("q_say", "意见建议", QuestionKind.text))
    if status != SurveyStatus.draft:
        services.open_survey(session, survey)
    session.commit()  # the views roll back on refusal: set-up data must survive that
    return survey


def responses(session, survey):
    return session.scalar(
        select(func.count()).select_from(SurveyResponse).where(SurveyResponse.survey_id == survey.id)
    )


# ----------------------------------------------------------------------------------------------- access


EVALUATOR_PAGES = [
    "/surveys",
    "/surveys/{id}",
    "/surveys/{id}/links",
    f"/surveys/{{id}}/links/{C1}",
    "/surveys/{id}/paper",
    "/surveys/{id}/progress",
    "/surveys/results?quarter=2026Q3",
    "/surveys/results.csv?quarter=2026Q3",
    "/surveys/results.xlsx?quarter=2026Q3",
]


@pytest.mark.parametrize("page", EVALUATOR_PAGES)
def test_resident_gets_403_and_anonymous_is_sent_to_login(client, session, page):
    survey = make_survey(session)
    path = page.format(id=survey.id)
    assert client.get(path).status_code == 302
    login(client, "resident")
    assert client.get(path).status_code == 403


@pytest.mark.parametrize("user", ["evaluator", "admin"])
@pytest.mark.parametrize("page", EVALUATOR_PAGES)
def test_evaluator_and_admin_pages_answer(client, session, user, page):
    survey = make_survey(session)
    login(client, user)
    response = client.get(page.format(id=survey.id))
    assert response.status_code == 200


def test_navigation_shows_survey_links_to_evaluators_only(client, session):
    login(client, "evaluator")
    assert "问卷调查" in client.get("/surveys").get_data(as_text=True)
    client.post("/logout")
    login(client, "resident")
    assert "问卷调查" not in client.get("/").get_data(as_text=True)


# ----------------------------------------------------------------------------------------------- editor


def test_create_survey_add_section_and_question_then_open(client, session):
    login(client, "evaluator")
    response = client.post("/surveys", data={"quarter": "2026q4", "title": "四季度调查"})
    assert response.status_code == 302
    survey = session.scalar(select(Survey).where(Survey.title == "四季度调查"))
    assert survey.quarter == "2026Q4" and survey.version == 1 and survey.status == SurveyStatus.draft
    assert client.post(f"/surveys/{survey.id}/sections", data={"title": "环境"}).status_code == 302
    section = survey.sections[0]
    response = client.post(
        f"/surveys/{survey.id}/questions",
        data={
            "name": "q1",
            "label": "绿化",
            "kind": "likert5",
            "section": str(section.id),
            "dont_know": "y",
            "required": "y",
            "indicator_code": "GG-02",
        },
    )
    assert response.status_code == 302
    session.refresh(survey)
    question = survey.questions[0]
    assert question.choices == [
        ["1", "很不满意"],
        ["2", "不太满意"],
        ["3", "一般"],
        ["4", "比较满意"],
        ["5", "很满意"],
    ]
    assert question.dont_know and question.required and question.section_id == section.id
    assert client.post(f"/surveys/{survey.id}/open").status_code == 302
    session.refresh(survey)
    assert survey.status == SurveyStatus.open and survey.opened_at is not None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"quarter": "2026Q5", "title": "x"}, "季度格式"),
        ({"quarter": "", "title": "x"}, "请填写季度"),
        ({"quarter": "2026Q3", "title": ""}, "请填写问卷标题"),
    ],
)
def test_create_survey_bad_input(client, session, data, message):
    login(client, "evaluator")
    response = client.post("/surveys", data=data)
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "1bad", "label": "x", "kind": "text"}, "题目代码只能用字母"),
        ({"name": "q_env", "label": "x", "kind": "text"}, "题目代码已存在"),
        ({"name": "q9", "label": "x", "kind": "single", "choices": "仅一个"}, "至少需要 2 个选项"),
        ({"name": "q9", "label": "x", "kind": "single", "choices": "a=甲\na=乙"}, "选项代码不能重复"),
        ({"name": "q9", "label": "x", "kind": "likert5", "choices": "好\n坏"}, "恰好 5 个"),
        ({"name": "", "label": "x", "kind": "text"}, "请填写题目代码"),
    ],
)
def test_add_question_bad_input(client, session, data, message):
    survey = make_survey(session, status=SurveyStatus.draft)
    login(client, "evaluator")
    response = client.post(f"/surveys/{survey.id}/questions", data=data)
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    assert len(survey.questions) == 5


def test_frozen_survey_refuses_edits_and_new_version_copies_it(client, session):
    survey = make_survey(session)
    login(client, "evaluator")
    response = client.post(
        f"/surveys/{survey.id}/questions", data={"name": "q9", "label": "新题", "kind": "text"}
    )
    assert response.status_code == 409
    assert "问卷已开始收集，不能再修改" in response.get_data(as_text=True)
    assert client.post(f"/surveys/{survey.id}/sections", data={"title": "新分组"}).status_code == 409
    assert client.post(f"/surveys/{survey.id}/open").status_code == 422
    session.refresh(survey)
    assert [q.name for q in survey.questions] == ["q_env", "q_safe", "q_know", "q_need", "q_say"]
    response = client.post(f"/surveys/{survey.id}/version")
    assert response.status_code == 302
    copy = session.scalar(select(Survey).where(Survey.previous_id == survey.id))
    assert copy.version == 2 and copy.status == SurveyStatus.draft and copy.salt != survey.salt
    assert [q.name for q in copy.questions] == [q.name for q in survey.questions]
    assert copy.questions[0].section.title == "社区服务" and copy.questions[0].section.survey_id == copy.id


def test_open_and_close_rules(client, session):
    empty = services.create_survey(session, "2026Q3", "空问卷")
    session.commit()
    login(client, "evaluator")
    response = client.post(f"/surveys/{empty.id}/open")
    assert response.status_code == 422 and "没有任何题目" in response.get_data(as_text=True)
    assert client.post(f"/surveys/{empty.id}/close").status_code == 422
    survey = make_survey(session)
    assert client.post(f"/surveys/{survey.id}/close").status_code == 302
    assert client.post(f"/surveys/{survey.id}/close").status_code == 302  # closing twice is harmless
    assert client.get(f"/s/{survey.id}/{C1}").status_code == 410


def test_close_job_is_safe_to_run_twice(session):
    from surveys.jobs import close_survey

    survey = make_survey(session)
    session.commit()
    assert close_survey(survey.id) is True
    assert close_survey(survey.id) is False


# ------------------------------------------------------------------------------------------ xlsform web


def xlsform_bytes(survey_rows, choice_rows, title="XLSForm 问卷"):
    book = Workbook()
    sheet = book.active
    sheet.title = "survey"
    for row in survey_rows:
        sheet.append(row)
    choices = book.create_sheet("choices")
    for row in choice_rows:
        choices.append(row)
    settings = book.create_sheet("settings")
    settings.append(["form_title", "form_id"])
    settings.append([title, "sat"])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


GOOD_SURVEY = [
    ["type", "name", "label::zh", "required", "indicator"],
    ["begin_group", "g1", "公共服务", "", ""],
    ["select_one sat", "q_env", "环境卫生", "yes", "GG-01"],
    ["select_multiple need", "q_need", "需要的服务", "no", ""],
    ["end_group", "", "", "", ""],
    ["integer", "q_age", "居住年数", "", ""],
]
GOOD_CHOICES = [
    ["list_name", "name", "label"],
    *[
        ["sat", str(i), label]
        for i, label in enumerate(["很不满意", "不太满意", "一般", "比较满意", "很满意"], 1)
    ],
    ["sat", "dk", "不了解"],
    ["need", "a", "养老"],
    ["need", "b", "托育"],
]


def test_create_survey_from_xlsform(client, session):
    login(client, "evaluator")
    data = {
        "quarter": "2026Q3",
        "title": "",
        "xlsform": (io.BytesIO(xlsform_bytes(GOOD_SURVEY, GOOD_CHOICES)), "f.xlsx"),
    }
    response = client.post("/surveys", data=data, content_type="multipart/form-data")
    assert response.status_code == 302
    survey = session.scalar(select(Survey).where(Survey.title == "XLSForm 问卷"))
    kinds = {q.name: (q.kind, q.dont_know, q.indicator_code) for q in survey.questions}
    assert kinds == {
        "q_env": (QuestionKind.likert5, True, "GG-01"),
        "q_need": (QuestionKind.multiple, False, ""),
        "q_age": (QuestionKind.integer, False, ""),
    }
    assert [s.title for s in survey.sections] == ["公共服务"]


def test_xlsform_with_problems_lists_them_all_and_stores_nothing(client, session):
    survey = make_survey(session, status=SurveyStatus.draft)
    bad = [
        ["type", "name", "label", "relevant"],
        ["calculate", "c1", "", ""],
        ["select_one nolist", "q_x", "x", ""],
        ["text", "q_y", "y", "${q_x} = 1"],
    ]
    login(client, "evaluator")
    response = client.post(
        f"/surveys/{survey.id}/import",
        data={"xlsform": (io.BytesIO(xlsform_bytes(bad, GOOD_CHOICES)), "bad.xlsx")},
        content_type="multipart/form-data",
    )
    body = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "不支持的列“relevant”" in body and "第 2 行" in body and "calculate" in body
    assert "第 3 行" in body and "nolist" in body
    session.refresh(survey)
    assert len(survey.questions) == 5


def test_xlsform_import_refused_on_frozen_survey_and_without_file(client, session):
    survey = make_survey(session)
    login(client, "evaluator")
    response = client.post(
        f"/surveys/{survey.id}/import",
        data={"xlsform": (io.BytesIO(xlsform_bytes(GOOD_SURVEY, GOOD_CHOICES)), "f.xlsx")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 409
    assert client.post(f"/surveys/{survey.id}/import", data={}).status_code == 422
    garbage = client.post(
        "/surveys",
        data={"quarter": "2026Q3", "title": "t", "xlsform": (io.BytesIO(b"not excel"), "x.xlsx")},
        content_type="multipart/form-data",
    )
    assert garbage.status_code == 422 and "无法读取文件" in garbage.get_data(as_text=True)


# ------------------------------------------------------------------------------------------------ online


GOOD_ANSWERS = {
    "q_env": "4",
    "q_safe": "dk",
    "q_know": "y",
    "q_need": ["a", "c"],
    "q_say": "多装路灯",
    "age_band": "30-44",
    "gender": "female",
}


def test_public_form_shows_questions_and_stores_a_response(client, session):
    survey = make_survey(session)
    page = client.get(f"/s/{survey.id}/{C1}")
    body = page.get_data(as_text=True)
    assert (
        page.status_code == 200
        and "环境卫生" in body
        and "不了解/不适用" in body
        and 'name="contact"' in body
    )
    response = client.post(f"/s/{survey.id}/{C1}", data=GOOD_ANSWERS)
    assert response.status_code == 200 and "提交成功" in response.get_data(as_text=True)
    stored = session.scalar(select(SurveyResponse).where(SurveyResponse.survey_id == survey.id))
    assert stored.community.code == C1 and stored.source == "online" and stored.district_code == "420102"
    values = {a.question_id: (a.value_num, a.value_text, a.dont_know) for a in stored.answers}
    by_name = {q.name: q.id for q in survey.questions}
    assert values[by_name["q_env"]] == (4.0, "4", False)
    assert values[by_name["q_safe"]] == (None, None, True)
    assert values[by_name["q_need"]] == (None, "a c", False)


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"q_env": ""}, "q_env", "此题为必答题"),
        ({"q_env": "7"}, "q_env", "选项不存在"),
        ({"q_know": "dk"}, "q_know", "选项不存在"),
        ({"q_need": ["a", "z"]}, "q_need", "选项不存在"),
        ({"age_band": "10-17"}, "age_band", "年龄段不在可选范围内"),
        ({"gender": "x"}, "gender", "性别不在可选范围内"),
        ({"contact": "12345"}, "contact", "11 位手机号码"),
    ],
)
def test_public_form_refuses_bad_answers_and_keeps_valid_input(client, session, change, field, message):
    survey = make_survey(session)
    response = client.post(f"/s/{survey.id}/{C1}", data={**GOOD_ANSWERS, **change})
    body = response.get_data(as_text=True)
    assert response.status_code == 422
    assert f'data-field="{field}">' in body and message in body
    assert "多装路灯" in body  # valid input kept
    assert responses(session, survey) == 0


def test_open_link_contact_dedupe_is_anonymous(client, session):
    survey = make_survey(session)
    first = client.post(f"/s/{survey.id}/{C1}", data={**GOOD_ANSWERS, "contact": "138 0013 8000"})
    assert first.status_code == 200
    again = client.post(f"/s/{survey.id}/{C2}", data={**GOOD_ANSWERS, "contact": "13800138000"})
    assert again.status_code == 409 and "已提交过" in again.get_data(as_text=True)
    assert responses(session, survey) == 1
    hashes = session.scalars(
        select(SurveyContact.contact_hash).where(SurveyContact.survey_id == survey.id)
    ).all()
    assert len(hashes) == 1 and "13800138000" not in hashes[0] and len(hashes[0]) == 64
    assert not hasattr(SurveyContact, "response_id")
    # Another survey has another salt: the same phone gives an unrelated hash.
    other = make_survey(session, title="另一问卷")
    assert services.contact_hash(other, "13800138000") != hashes[0]


def test_panel_tokens_work_once(client, session):
    survey = make_survey(session)
    login(client, "evaluator")
    page = client.post(f"/surveys/{survey.id}/links/{C1}", data={"count": "3"})
    body = page.get_data(as_text=True)
    assert page.status_code == 200 and "<svg" in body
    tokens = re.findall(r'<code class="token">([^<]+)</code>', body)
    assert len(tokens) == 3 and len(set(tokens)) == 3
    client.post("/logout")
    form = client.get(f"/s/{survey.id}/{C1}?t={tokens[0]}").get_data(as_text=True)
    assert 'name="contact"' not in form
    assert client.post(f"/s/{survey.id}/{C1}?t={tokens[0]}", data=GOOD_ANSWERS).status_code == 200
    reused = client.post(f"/s/{survey.id}/{C1}?t={tokens[0]}", data=GOOD_ANSWERS)
    assert reused.status_code == 409 and "已使用过" in reused.get_data(as_text=True)
    wrong_place = client.post(f"/s/{survey.id}/{C2}?t={tokens[1]}", data=GOOD_ANSWERS)
    assert wrong_place.status_code == 422 and "答卷码无效" in wrong_place.get_data(as_text=True)
    assert client.post(f"/s/{survey.id}/{C1}?t=forged", data=GOOD_ANSWERS).status_code == 422
    assert client.post(f"/s/{survey.id}/{C1}?t={tokens[1]}", data=GOOD_ANSWERS).status_code == 200
    sources = session.scalars(
        select(SurveyResponse.source).where(SurveyResponse.survey_id == survey.id)
    ).all()
    assert sources == ["panel", "panel"]


@pytest.mark.parametrize("count", ["0", "501", "abc"])
def test_token_count_bad_input(client, session, count):
    survey = make_survey(session)
    login(client, "evaluator")
    assert client.post(f"/surveys/{survey.id}/links/{C1}", data={"count": count}).status_code == 422


def test_public_form_unknown_places_and_draft(client, session):
    survey = make_survey(session)
    draft = make_survey(session, title="草稿", status=SurveyStatus.draft)
    assert client.get(f"/s/{survey.id}/NOPE").status_code == 404
    assert client.get(f"/s/{survey.id}/420102").status_code == 404  # a district is not a community
    assert client.get(f"/s/99999/{C1}").status_code == 404
    assert client.get(f"/s/{draft.id}/{C1}").status_code == 404


def test_links_page_lists_communities_with_filter(client, session):
    survey = make_survey(session)
    login(client, "evaluator")
    body = client.get(f"/surveys/{survey.id}/links?under=420102-S1").get_data(as_text=True)
    assert f"http://localhost/s/{survey.id}/{C1}" in body and "420102-S2-C1" not in body


# ------------------------------------------------------------------------------------------------ paper


PAPER_CSV = (
    "instance_id,community,age_band,gender,q_env,q_safe,q_know,q_need,q_say\n"
    f"P-001,{C1},60+,女,5,4,y,a b,好\n"
    f"P-002,{C1},,,9,4,y,,\n"  # line 3: likert out of range
    f"P-003,NOWHERE,,,3,,n,,\n"  # line 4: unknown community
    f"P-004,{C2},18-29,male,2,dk,n,c,\n"
    f"P-001,{C2},,,3,,,,\n"  # line 6: duplicate instance id in the file
    f",{C2},,,,,,,\n"  # line 7: no id, missing required answer
)


def upload(client, survey, data, name="paper.csv"):
    return client.post(
        f"/surveys/{survey.id}/paper",
        data={"file": (io.BytesIO(data), name)},
        content_type="multipart/form-data",
    )


def test_paper_csv_keeps_good_rows_reports_bad_ones_and_reupload_adds_nothing(client, session):
    survey = make_survey(session)
    login(client, "evaluator")
    response = upload(client, survey, PAPER_CSV.encode("utf-8-sig"))
    body = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "已保存 2 份" in body
    for line in ("<td>3</td>", "<td>4</td>", "<td>6</td>", "<td>7</td>"):
        assert line in body
    assert "社区代码“NOWHERE”不存在" in body and "与第 2 行重复" in body and "此题为必答题" in body
    assert responses(session, survey) == 2
    found = re.search(r'href="(/surveys/\d+/uploads/\d+/rejected.csv)"', body)
    assert found is not None
    link = found.group(1)
    rejected = client.get(link)
    assert rejected.status_code == 200 and rejected.mimetype == "text/csv"
    rows = list(pd.read_csv(io.StringIO(rejected.get_data(as_text=True).lstrip("\ufeff")))["行号"])
    assert sorted(set(rows)) == [3, 4, 6, 7]
    again = upload(client, survey, PAPER_CSV.encode("gb18030"))
    assert "已保存 0 份；重复（已导入过）2 份" in again.get_data(as_text=True)
    assert responses(session, survey) == 2
    stored = session.scalars(select(SurveyResponse).where(SurveyResponse.survey_id == survey.id)).all()
    assert {(r.instance_id, r.gender, r.age_band, r.source) for r in stored} == {
        ("paper-P-001", "female", "60+", "paper"),
        ("paper-P-004", "male", "18-29", "paper"),
    }


def test_paper_xlsx_upload(client, session):
    survey = make_survey(session)
    book = Workbook()
    sheet = book.active
    sheet.append(["instance_id", "community", "q_env", "q_know"])
    sheet.append(["X-1", C1, 4, "y"])
    sheet.append(["X-2", C1, 6, "y"])
    buffer = io.BytesIO()
    book.save(buffer)
    login(client, "evaluator")
    body = upload(client, survey, buffer.getvalue(), "paper.xlsx").get_data(as_text=True)
    assert "已保存 1 份" in body and "<td>3</td>" in body
    assert responses(session, survey) == 1


def test_paper_bad_files(client, session):
    survey = make_survey(session)
    draft = make_survey(session, title="草稿", status=SurveyStatus.draft)
    login(client, "evaluator")
    missing = upload(client, survey, b"id,place\n1,2\n")
    assert missing.status_code == 422 and "缺少列：instance_id, community" in missing.get_data(as_text=True)
    assert client.post(f"/surveys/{survey.id}/paper", data={}).status_code == 422
    assert "尚未开始收集" in upload(client, draft, PAPER_CSV.encode()).get_data(as_text=True)
    assert client.get(f"/surveys/{survey.id}/uploads/99999/rejected.csv").status_code == 404


# ----------------------------------------------------------------------------------- progress and results


def seed_answers(session, survey, community, values):
    """Store online responses with likert pairs (q_env, q_safe); None means 不了解."""
    unit = services.community_by_code(session, community)
    for env, safe in values:
        raw = {"q_env": ["dk" if env is None else str(env)], "q_safe": ["dk" if safe is None else str(safe)]}
        services.submit_online(session, survey, unit, raw, services.Respondent())
    session.commit()


def test_progress_counts_against_required_sample(client, session):
    survey = make_survey(session)
    seed_answers(session, survey, C1, [(5, 4), (3, None)])
    login(client, "evaluator")
    body = client.get(f"/surveys/{survey.id}/progress").get_data(as_text=True)
    row = re.search(rf'<tr data-community="{C1}">(.*?)</tr>', body, re.S)
    assert row is not None
    cells = re.findall(r"<td>([^<]*)</td>", row.group(1))
    population = int(cells[1])
    assert cells[2] == "2" and int(cells[3]) == services.required_sample(population)
    # ±5 points, SD 25, 95 %: n0 = (1.959964 × 25 / 5)² = 96.03; with FPC for N = 3000: 96.03 / 1.032 = 93.05 → 94.
    assert services.required_sample(None) == 97
    assert services.required_sample(3000) == 94


def test_community_results_match_the_stats_module(session):
    survey = make_survey(session)
    env_safe = [(5, 4), (4, None), (2, 3), (None, None), (3, 3)]
    seed_answers(session, survey, C1, env_safe)
    seed_answers(session, survey, C2, [(5, 5)])
    table = frames.community_results(session, "2026Q3")
    overall = table[(table["level"] == "overall") & (table["community_code"] == C1)].iloc[0]
    wide = pd.DataFrame(env_safe, columns=["q_env", "q_safe"], dtype=float)
    expected = satisfaction_index(wide)  # the (None, None) respondent answered nothing: left out
    assert overall["n"] == expected.n == 4
    assert overall["index"] == pytest.approx(expected.index)
    assert (overall["low"], overall["high"]) == pytest.approx((expected.low, expected.high))
    question = table[
        (table["level"] == "question") & (table["code"] == "q_safe") & (table["community_code"] == C1)
    ]
    # q_safe answered 4, 3, 3 → 75, 50, 50: mean 58.33 (不了解 out of the denominator).
    assert question.iloc[0]["n"] == 3 and question.iloc[0]["index"] == pytest.approx(175 / 3)
    indicator = table[(table["level"] == "indicator") & (table["community_code"] == C1)].iloc[0]
    assert indicator["code"] == "GG-01" and indicator["index"] == pytest.approx(expected.index)
    single = table[(table["level"] == "overall") & (table["community_code"] == C2)].iloc[0]
    assert single["n"] == 1 and single["index"] == 100 and math.isnan(single["low"])


def test_quarter_change_and_results_page(client, session):
    old = make_survey(session, quarter="2026Q2")
    new = make_survey(session, quarter="2026Q3")
    seed_answers(session, old, C1, [(1, 2), (2, 2), (1, 1), (2, 1)])
    seed_answers(session, new, C1, [(5, 4), (4, 5), (5, 5), (4, 4)])
    change = frames.quarter_change(session, "2026Q3")
    row = change.loc[C1]
    assert row["mean_prev"] == pytest.approx(12.5) and row["mean_curr"] == pytest.approx(87.5)
    assert bool(row["significant"])
    login(client, "evaluator")
    body = client.get("/surveys/results?quarter=2026Q3").get_data(as_text=True)
    assert body.count("<svg") >= 2 and "<polyline" in body and "87.5" in body
    assert "http" not in re.sub(
        r'xmlns="http://www.w3.org/2000/svg"|href="http://localhost[^"]*"', "", body.split("<main>")[1]
    )
    assert client.get("/surveys/results?quarter=bad").status_code == 400


def test_exports(client, session):
    survey = make_survey(session)
    seed_answers(session, survey, C1, [(5, 4), (3, 3)])
    login(client, "evaluator")
    csv_response = client.get("/surveys/results.csv?quarter=2026Q3")
    frame = pd.read_csv(io.StringIO(csv_response.get_data(as_text=True).lstrip("\ufeff")))
    overall = frame[(frame["社区代码"] == C1) & (frame["层级"] == "总体")].iloc[0]
    # Respondents (5, 4) → (100 + 75)/2 = 87.5 and (3, 3) → 50: index 68.75.
    assert overall["样本数"] == 2 and overall["满意度指数"] == pytest.approx(68.75)
    xlsx = client.get("/surveys/results.xlsx?quarter=2026Q3")
    sheet = load_workbook(io.BytesIO(xlsx.data)).active
    header = [c.value for c in sheet[1]]
    assert header[:3] == ["社区代码", "社区", "层级"] and sheet.max_row == len(frame) + 1


def test_answers_frame_and_callback_source(session):
    from assessment.inputs import callback_ratings, callback_results
    from routing.models import Case

    survey = make_survey(session)
    seed_answers(session, survey, C1, [(5, None)])
    answers = frames.answers_frame(session, quarter="2026Q3")
    assert set(answers["question"]) == {"q_env", "q_safe"}
    assert answers.loc[answers["question"] == "q_safe", "dont_know"].tolist() == [True]
    cases = session.scalars(select(Case).order_by(Case.id).limit(3)).all()
    for case, rating in zip(cases, ["satisfied", "dissatisfied", "basically_satisfied"], strict=True):
        case.satisfaction, case.solved = rating, rating != "dissatisfied"
    session.flush()
    ratings = callback_ratings(session)
    assert len(ratings) == 3
    summary = callback_results(session)
    assert summary["n"].sum() == 3 and summary["satisfied"].sum() == 2


# ------------------------------------------------------------------------------ weighting and reliability


def seed_people(session, survey, community, people):
    """Online responses (age_band, gender, q_env, q_safe); None in an answer means 不了解."""
    unit = services.community_by_code(session, community)
    for age, gender, env, safe in people:
        raw = {"q_env": ["dk" if env is None else str(env)], "q_safe": ["dk" if safe is None else str(safe)]}
        services.submit_online(session, survey, unit, raw, services.Respondent(age, gender))
    session.commit()


def post_margins(client, survey, text):
    return client.post(
        f"/surveys/{survey.id}/margins",
        data={"file": (io.BytesIO(text.encode()), "margins.csv")},
        content_type="multipart/form-data",
    )


MARGINS = "dimension,category,share_or_count\ngender,male,500\ngender,female,500\n"


def test_margin_upload_is_validated_by_line_and_all_or_nothing(client, session):
    survey = make_survey(session)
    login(client, "evaluator")
    assert post_margins(client, survey, MARGINS).status_code == 302
    assert services.survey_margins(session, survey.id) == {"gender": {"male": 500.0, "female": 500.0}}
    bad = (
        "dimension,category,share_or_count\n"
        "age_band,18-29,0.3\n"
        "age_band,70+,0.2\n"  # line 3: not a listed band
        "income,high,1\n"  # line 4: not a dimension
        "gender,male,-1\n"  # line 5: negative
        "age_band,18-29,0.1\n"  # line 6: repeats line 2
        "district,999999,5\n"  # line 7: no such district
        "district,420102,x\n"  # line 8: not a number
    )
    response = post_margins(client, survey, bad)
    body = response.get_data(as_text=True)
    assert response.status_code == 422 and "边际分布未保存" in body
    for expected in (
        "第 3 行",
        "第 4 行",
        "第 5 行",
        "第 6 行（category）：与第 2 行重复",
        "第 7 行",
        "第 8 行",
    ):
        assert expected in body
    # Nothing half-applied: the earlier margins are untouched.
    assert services.survey_margins(session, survey.id) == {"gender": {"male": 500.0, "female": 500.0}}
    zero = post_margins(client, survey, "dimension,category,share_or_count\ngender,male,0\ngender,female,0\n")
    assert zero.status_code == 422 and "合计必须大于 0" in zero.get_data(as_text=True)
    assert post_margins(client, survey, "dimension,category\n").status_code == 422
    assert client.post(f"/surveys/{survey.id}/margins", data={}).status_code == 422
    assert client.post(f"/surveys/{survey.id}/margins", data={"clear": "1"}).status_code == 302
    assert services.survey_margins(session, survey.id) == {}


def test_weighted_index_by_hand_with_kish_interval(client, session):
    survey = make_survey(session)
    # Three men answer 5/5 (score 100), one woman 1/1 (score 0): unweighted 75. Margins 50/50 give the men
    # 0.5·4/3 = 2/3 each and the woman 2: weighted (3·⅔·100 + 2·0)/4 = 50. Kish n_eff = 4²/(3·4/9 + 4) = 3;
    # s² = Σw(x − 50)²/Σw · 3/2 = 2500 · 1.5 = 3750; SE = √(3750/3) = 35.355; t(0.975, 2) = 4.303
    # (any t table) → half-width 152.1.
    seed_people(session, survey, C1, [("18-29", "male", 5, 5)] * 3 + [("60+", "female", 1, 1)])
    services.set_margins(session, survey, MARGINS)
    session.commit()
    result = frames.weighted_results(session, survey.id, services.survey_margins(session, survey.id))
    assert result.weighted and result.reason == ""
    row = result.table.set_index("community_code").loc[C1]
    assert row["n"] == 4 and row["index"] == pytest.approx(75)
    assert row["w_index"] == pytest.approx(50) and row["n_eff"] == pytest.approx(3)
    # t half-width 152.1 around 50 (p = 0.5), bounded on the logit scale: 100·expit(1.521/0.25).
    half = 4.302653 * math.sqrt(1250)
    assert row["w_high"] == pytest.approx(100 / (1 + math.exp(-half / 100 / 0.25)), rel=1e-6)
    plain = satisfaction_index(pd.DataFrame({"s": [100.0, 100.0, 100.0, 0.0]}), points=None)
    assert (row["low"], row["high"]) == pytest.approx((plain.low, plain.high))
    login(client, "evaluator")
    body = client.get("/surveys/results?quarter=2026Q3").get_data(as_text=True)
    table = re.search(rf'<tr data-community="{C1}">(.*?)</tr>', body.split('class="weighted"')[1], re.S)
    assert table is not None
    assert '<td class="unweighted">75.0</td>' in table.group(1)
    assert '<td class="weighted-index">50.0</td>' in table.group(1)
    assert "未加权指数" in body and "加权指数" in body and "性别：male=500.0；female=500.0" in body
    editor = client.get(f"/surveys/{survey.id}").get_data(as_text=True)
    assert "性别：male=500.0；female=500.0" in editor


def test_weighting_falls_back_with_a_reason_when_a_category_is_missing(client, session):
    survey = make_survey(session)
    seed_people(session, survey, C1, [("18-29", "male", 5, 5), ("18-29", "female", 3, 3)])
    services.set_margins(
        session, survey, "dimension,category,share_or_count\nage_band,18-29,1\nage_band,60+,1\n"
    )
    session.commit()
    login(client, "evaluator")
    response = client.get("/surveys/results?quarter=2026Q3")
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "未能加权：年龄段“60+”在样本中没有受访者" in body
    section = body.split('class="weighted"')[1]
    assert '<td class="unweighted">75.0</td>' in section and "weighted-index" not in section


def test_cronbach_alpha_per_survey_and_section_with_listwise_deletion(client, session):
    survey = make_survey(session)
    # q_env 1,2,3,4 and q_safe 2,1,4,3: item variances 5/3 each, totals 3,3,7,7 with variance 16/3:
    # α = 2/(2 − 1) · (1 − (10/3)/(16/3)) = 0.75. The fifth respondent said 不了解 on q_safe: left out (n = 4).
    seed_answers(session, survey, C1, [(1, 2), (2, 1), (3, 4), (4, 3), (5, None)])
    table = frames.reliability(session, survey.id)
    whole = table[table["scope"] == "survey"].iloc[0]
    section = table[table["scope"] == "section"].iloc[0]
    assert (whole["items"], whole["n_used"], whole["alpha"]) == (2, 4, pytest.approx(0.75))
    assert section["title"] == "社区服务" and section["alpha"] == pytest.approx(0.75)
    login(client, "evaluator")
    body = client.get("/surveys/results?quarter=2026Q3").get_data(as_text=True)
    row = re.search(r'<tr data-scope="survey">(.*?)</tr>', body, re.S)
    assert row is not None and re.findall(r"<td>([^<]*)</td>", row.group(1)) == ["全卷", "2", "4", "0.750"]
    assert "分组：社区服务" in body


def test_cronbach_alpha_reports_why_it_cannot_be_computed(session):
    survey = make_survey(session)
    seed_answers(session, survey, C1, [(5, None)])
    whole = frames.reliability(session, survey.id).iloc[0]
    assert whole["n_used"] == 0 and math.isnan(whole["alpha"]) and "至少需要 2 份完整作答" in whole["note"]


def test_city_trend_flags_quarters_with_few_answers(client, session):
    """The city trend swung on 2 answers without a warning: such quarters are starred and the interval stays in 0–100."""
    survey = make_survey(session, quarter="2026Q3")
    seed_answers(session, survey, C1, [(2, 2), (4, 4)])  # 2 respondents: 25 and 75
    series = frames.quarter_series(session, ["2026Q3"])
    assert series["low"].iloc[0] >= 0.0 and series["high"].iloc[0] <= 100.0
    login(client, "evaluator")
    body = client.get("/surveys/results?quarter=2026Q3").get_data(as_text=True)
    assert "2026Q3*" in body and "样本不足 30 人" in body
