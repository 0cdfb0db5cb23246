"""Known answers of the duplicate-text similarity (character-bigram Dice coefficient)."""

from __future__ import annotations

import pytest

from routing.duplicates import bigrams, normalise, similarity, snippet


def test_normalise_drops_punctuation_and_folds_full_width() -> None:
    assert normalise("３号楼，漏水！ AB") == "3号楼漏水ab"


def test_bigrams() -> None:
    assert bigrams("垃圾桶") == {"垃圾", "圾桶"}
    assert bigrams("水") == {"水"}
    assert bigrams("，。") == set()


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("垃圾桶没有清运", "垃圾桶没有清运", 1.0),
        ("垃圾桶三天没清运", "垃圾桶两天没清运", 10 / 14),  # 5 of 7 bigrams shared on each side
        ("路灯不亮", "垃圾满了", 0.0),
        ("路灯不亮", "", 0.0),
        ("3号楼漏水", "３号楼，漏水。", 1.0),  # punctuation and full-width digits do not count
        ("小区路灯坏了", "路灯坏了", 2 * 3 / (5 + 3)),
    ],
)
def test_similarity_known_answers(a: str, b: str, expected: float) -> None:
    assert similarity(a, b) == pytest.approx(expected)
    assert similarity(b, a) == pytest.approx(expected)


def test_snippet_hides_phone_numbers_and_shortens() -> None:
    assert snippet("请联系 13812345678 处理") == "请联系 … 处理"
    assert snippet("一" * 40) == "一" * 30 + "…"
