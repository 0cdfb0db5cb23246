"""Survey editor: questions of a draft are editable, deletable, reorderable and previewable; frozen ones are not."""

from __future__ import annotations

from sqlalchemy.orm import Session

from surveys.models import SurveyStatus
from tests.conftest import login
from tests.web.test_surveys import make_survey


def _names(session: Session, survey) -> list[str]:
    session.expire(survey)
    return [q.name for q in survey.questions]


def test_questions_move_up_and_down_and_the_public_form_follows(client, session) -> None:
    survey = make_survey(session, status=SurveyStatus.draft)
    assert _names(session, survey) == ["q_env", "q_safe", "q_know", "q_need", "q_say"]
    login(client, "evaluator")
    know = survey.questions[2]
    assert client.post(f"/surveys/{survey.id}/questions/{know.id}/up").status_code == 302
    assert client.post(f"/surveys/{survey.id}/questions/{know.id}/up").status_code == 302
    assert client.post(f"/surveys/{survey.id}/questions/{know.id}/up").status_code == 302  # already first
    assert _names(session, survey) == ["q_know", "q_env", "q_safe", "q_need", "q_say"]
    assert client.post(f"/surveys/{survey.id}/questions/{know.id}/down").status_code == 302
    assert _names(session, survey) == ["q_env", "q_know", "q_safe", "q_need", "q_say"]
    assert [q.position for q in survey.questions] == [0, 1, 2, 3, 4]
    page = client.get(f"/surveys/{survey.id}/preview").get_data(as_text=True)
    assert page.index('id="q-q_know"') < page.index('id="q-q_safe"')  # preview in the editor's order
    assert 'id="preview-note"' in page and "disabled" in page


def test_edit_question_prefills_saves_and_refuses_bad_input(client, session) -> None:
    survey = make_survey(session, status=SurveyStatus.draft)
    login(client, "evaluator")
    know = survey.questions[2]
    page = client.get(f"/surveys/{survey.id}/questions/{know.id}").get_data(as_text=True)
    assert "是否知道社区书记" in page and "y=是\nn=否" in page
    data = {
        "name": "q_know",
        "label": "是否认识社区书记",
        "kind": "single",
        "choices": "y=认识\nn=不认识",
        "section": "",
    }
    bad = client.post(f"/surveys/{survey.id}/questions/{know.id}", data={**data, "name": "q_env"})
    assert bad.status_code == 422 and "题目代码已存在" in bad.get_data(as_text=True)
    assert client.post(f"/surveys/{survey.id}/questions/{know.id}", data=data).status_code == 302
    session.refresh(know)
    assert know.label == "是否认识社区书记" and know.choices == [["y", "认识"], ["n", "不认识"]]
    assert know.position == 2  # editing keeps the place
    assert client.get(f"/surveys/{survey.id}/questions/999999").status_code == 404


def test_delete_question_closes_up_the_order(client, session) -> None:
    survey = make_survey(session, status=SurveyStatus.draft)
    login(client, "evaluator")
    safe = survey.questions[1]
    assert client.post(f"/surveys/{survey.id}/questions/{safe.id}/delete").status_code == 302
    assert _names(session, survey) == ["q_env", "q_know", "q_need", "q_say"]
    assert [q.position for q in survey.questions] == [0, 1, 2, 3]
    editor = client.get(f"/surveys/{survey.id}").get_data(as_text=True)
    assert "预览问卷" in editor and "上移" in editor and "删除" in editor


def test_open_survey_questions_cannot_be_changed(client, session) -> None:
    survey = make_survey(session, status=SurveyStatus.open)
    login(client, "evaluator")
    first = survey.questions[0]
    for path in (f"/questions/{first.id}/delete", f"/questions/{first.id}/down"):
        assert client.post(f"/surveys/{survey.id}{path}").status_code == 409
    assert client.get(f"/surveys/{survey.id}/questions/{first.id}").status_code == 409
    assert _names(session, survey)[0] == "q_env"
    assert "上移" not in client.get(f"/surveys/{survey.id}").get_data(as_text=True)


def test_editor_pages_are_for_evaluators(client, session) -> None:
    survey = make_survey(session, status=SurveyStatus.draft)
    login(client, "handler-community")
    first = survey.questions[0]
    assert client.post(f"/surveys/{survey.id}/questions/{first.id}/delete").status_code == 403
    assert client.get(f"/surveys/{survey.id}/preview").status_code == 403
