"""Password policy: long enough, not built on the username, and not guessable (zxcvbn's estimate).

zxcvbn (Dropbox's estimator) knows the common-password lists, keyboard walks, dates, repeats and l33t
substitutions, so ``12345678``, ``password123`` or ``qwertyuiop`` fail however long they are.
"""

from __future__ import annotations

from zxcvbn import zxcvbn

from core.i18n import N_, DomainError

MIN_LENGTH = 10
MAX_LENGTH = 128  # zxcvbn's work grows with length; nobody types more
MIN_SCORE = 3  # zxcvbn 0–4; 3 = "safely unguessable: moderate protection from offline slow-hash attacks"
SITE_WORDS = ("minhu", "woying", "民呼我应", "12345")


def check_password(password: str, username: str = "", display_name: str = "") -> None:
    """Raise DomainError(field="password") when ``password`` breaks the policy."""
    if len(password) < MIN_LENGTH:
        raise DomainError("weak_password", N_("密码至少 10 位"), "password")
    if len(password) > MAX_LENGTH:
        raise DomainError("weak_password", N_("密码最多 128 位"), "password")
    lowered = password.lower()
    for name in (username, display_name):
        if len(name) >= 3 and name.lower() in lowered:
            raise DomainError("weak_password", N_("密码不能包含用户名或称呼"), "password")
    inputs = [value for value in (username, display_name, *SITE_WORDS) if value]
    if zxcvbn(password, user_inputs=inputs)["score"] < MIN_SCORE:
        raise DomainError(
            "weak_password",
            N_("密码太容易被猜到（常见密码、连续或重复的字符、日期等），请换一个更长、更不规则的密码"),
            "password",
        )
