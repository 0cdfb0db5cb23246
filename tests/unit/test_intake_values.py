"""routing.intake's pure helpers: known answers that stored data depends on."""

from __future__ import annotations

import pytest

from routing.intake import Submission, normalise_phone


def test_the_fingerprint_of_a_submission_is_the_one_stored_cases_carry() -> None:
    """Idempotent replays compare this hash with the one stored at intake: it must never change (the
    value was computed by the original ``sha256(json.dumps(asdict(submission), sort_keys=True))``)."""
    submission = Submission(
        category="HW-01",
        community="420102-S1-C1",
        address="解放大道 1 号",
        description="路灯坏了三天",
        contact_name="张三",
        contact_phone="13800001234",
        lat=30.58,
        lng=114.3,
    )
    assert submission.fingerprint() == "62fd7bcb6f397540c3b65248e2bb6d6d39b0cf6ee7eca0bce12b1f0a94d1cfbe"
    assert Submission(**{**submission.__dict__, "anonymous": True}).fingerprint() != submission.fingerprint()


def test_phone_numbers_lose_spaces_dashes_and_the_country_code() -> None:
    assert normalise_phone("+86 138-0000-1234") == "13800001234"
    assert normalise_phone("0086 (027) 8888 6666") == "02788886666"


def test_tracking_numbers_spell_one_draw_in_the_phone_safe_alphabet(monkeypatch: pytest.MonkeyPatch) -> None:
    from datetime import datetime

    from routing import intake

    day = datetime(2026, 12, 1, 9, 30)
    draws = iter([0, 1, 32**5 - 1])
    monkeypatch.setattr(intake.secrets, "randbelow", lambda n: next(draws) if n == 32**5 else -1)
    assert [intake.new_tracking_number(day) for _ in range(3)] == [
        "MH20261201-22222",
        "MH20261201-32222",  # the lowest digit first
        "MH20261201-ZZZZZ",
    ]
    monkeypatch.undo()
    seen: list[set[str]] = [set() for _ in range(5)]
    for _ in range(3000):
        suffix = intake.new_tracking_number(day).split("-")[1]
        for position, char in enumerate(suffix):
            seen[position].add(char)
    assert all(found == set("23456789ABCDEFGHJKLMNPQRSTUVWXYZ") for found in seen)
