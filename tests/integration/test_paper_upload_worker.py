"""A large paper upload imported by a real RQ worker process on real PostgreSQL and Redis.

Skips off-CI when the services are missing (see test_routing_worker, whose ``stack`` it shares).
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from sqlalchemy import func, select

from tests.integration.test_routing_worker import ROOT, stack  # noqa: F401 - the shared fixture

pytestmark = [pytest.mark.integration, pytest.mark.slow]
C1, C2 = "420102-S1-C1", "420102-S1-C2"


def test_a_queued_paper_upload_is_imported_by_a_worker_once(stack: dict[str, Any]) -> None:  # noqa: F811
    from app.extensions import db
    from core import jobs
    from surveys import paper, services
    from surveys.definitions import QuestionSpec, likert_choices
    from surveys.models import PaperUpload, QuestionKind, SurveyResponse

    app = stack["app"]
    rows = "".join(f"P-{i},{C1 if i % 2 else C2},,{1 + i % 5}\n" for i in range(1_200))
    data = ("instance_id,community,district,q_env\n" + rows + f"BAD,{C1},420103,3\n").encode()
    with app.app_context():
        survey = services.create_survey(db.session, "2026Q3", "集成测试问卷")
        services.add_question(
            db.session,
            survey,
            QuestionSpec("q_env", "环境", QuestionKind.likert5, True, choices=likert_choices()),
        )
        services.open_survey(db.session, survey)
        upload = paper.queue_paper(db.session, survey, data, "big.csv")
        db.session.commit()
        upload_id, survey_id = upload.id, survey.id
        for _ in range(2):  # enqueued twice: one job id, and a second run would change nothing
            jobs.enqueue("surveys.jobs.import_paper_upload", upload_id)
        db.session.remove()
    worker = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "app", "worker", "--queues", "scoring", "--burst"],
        env=stack["env"],
        cwd=ROOT,
        capture_output=True,
        timeout=300,
    )
    assert worker.returncode == 0, worker.stderr.decode()[-2000:]
    with app.app_context():
        row = db.session.get(PaperUpload, upload_id)
        assert row is not None
        assert (row.status, row.stored, row.processed, row.valid_rows, row.rejected_total) == (
            "done",
            1_200,
            1_200,
            1_200,
            1,
        )
        assert row.payload is None
        count = db.session.scalar(
            select(func.count(SurveyResponse.id)).where(SurveyResponse.survey_id == survey_id)
        )
        assert count == 1_200
        db.session.remove()
