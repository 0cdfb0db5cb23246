"""Bounded imports (core.csvio): caps on bytes, uncompressed size, rows, columns, cells and time; cell
hygiene; a short error report with the total; bounded numbers in the unit, catalogue and rule imports."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator

import pytest
from openpyxl import Workbook

from core.catalogue import parse_categories
from core.csvio import (
    MAX_REPORTED,
    XLSFORM_LIMITS,
    ErrorLog,
    ImportRejected,
    Limits,
    RowError,
    check_xlsx,
    read_rows,
    xlsx_rows,
)
from core.units import parse_units
from routing.rules import parse_rules_csv
from surveys.imports import parse_xlsform
from tests.unit.test_catalogue_import import HEADER as CATEGORY_HEADER
from tests.unit.test_units_import import HEADER as UNIT_HEADER
from tests.unit.test_units_import import TREE


def xlsx(rows: list[list[object]], at: tuple[int, int] | None = None, title: str = "Sheet") -> bytes:
    """A workbook of ``rows`` (optionally with one stray cell at (row, column))."""
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = title
    for row in rows:
        sheet.append(row)
    if at is not None:
        sheet.cell(row=at[0], column=at[1], value="x")
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def messages(rejected: pytest.ExceptionInfo[ImportRejected]) -> str:
    """Every listed problem as one string."""
    return "；".join(str(e) for e in rejected.value.errors)


# --- cell hygiene -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("char", ["\x00", "\x1b", "\u202e"])
def test_a_control_character_in_a_unit_row_rejects_the_file(char: str) -> None:
    data = TREE.replace("测试社区", f"测试{char}社区")
    with pytest.raises(ImportRejected) as rejected:
        parse_units(data.encode())
    assert "第 4 行（name）：含有控制字符" in messages(rejected)


def test_over_long_unit_cells_are_refused_by_their_column_length() -> None:
    with pytest.raises(ImportRejected) as rejected:
        parse_units(TREE.replace("测试社区", "长" * 121))
    assert "名称过长（最多 120 个字符）" in messages(rejected)
    with pytest.raises(ImportRejected) as rejected:
        parse_units(UNIT_HEADER + f"T-D1,测试区,district,{'4' * 41},district,,\n")
    assert "上级编码过长" in messages(rejected)


@pytest.mark.parametrize("population", ["9" * 400, "1e400", "inf", "-1", "60000000"])
def test_unit_population_is_bounded(population: str) -> None:
    with pytest.raises(ImportRejected) as rejected:
        parse_units(TREE.replace(",5000\n", f",{population}\n"))
    assert "人口数" in messages(rejected)


def test_a_huge_csv_field_is_a_clear_rejection_not_a_crash() -> None:
    with pytest.raises(ImportRejected) as rejected:
        parse_units(UNIT_HEADER + "T-D1," + "长" * 200_000 + ",district,420100,district,,\n")
    assert "CSV 格式错误" in messages(rejected) or "单元格过长" in messages(rejected)


# --- category limits ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sign_for", "limit", "unit"),
    [
        ("2", "inf", "working_days"),
        ("inf", "3", "working_days"),
        ("2", "1e400", "working_hours"),
        ("2", "9" * 400, "calendar_hours"),
        ("721", "3", "working_days"),
        ("2", "366", "working_days"),
        ("2", "nan", "working_days"),
    ],
)
def test_category_limits_are_finite_and_bounded(sign_for: str, limit: str, unit: str) -> None:
    row = f"T-01,测试类别,测试组,D-FGJ,street,urgent,{sign_for},{limit},{unit}\n"
    with pytest.raises(ImportRejected) as rejected:
        parse_categories(CATEGORY_HEADER + row)
    assert "不超过" in messages(rejected) or "大于 0" in messages(rejected)


def test_category_limits_at_their_bounds_are_accepted() -> None:
    rows = parse_categories(
        CATEGORY_HEADER + "T-01,测试类别,测试组,D-FGJ,street,urgent,720,365,working_days\n"
    )
    assert (rows[0].sign_for_hours, rows[0].resolution_limit) == (720, 365)


def test_rule_priority_is_bounded() -> None:
    with pytest.raises(ImportRejected) as rejected:
        parse_rules_csv("category,level,priority\nHW-01,street," + "9" * 400 + "\n")
    assert "优先级" in messages(rejected)
    with pytest.raises(ImportRejected) as rejected:
        parse_rules_csv("category,level,place\nHW-01,street," + "x" * 41 + "\n")
    assert "过长（最多 40 个字符）" in messages(rejected)


# --- the error report is short --------------------------------------------------------------------------------


def test_thousands_of_bad_rows_list_a_few_hundred_and_count_them_all() -> None:
    data = UNIT_HEADER + "".join(f"T-{i},,district,420100,nowhere,,\n" for i in range(5_000))
    with pytest.raises(ImportRejected) as rejected:
        parse_units(data)
    assert len(rejected.value.errors) == MAX_REPORTED
    assert rejected.value.total == 10_000  # two problems a row: no name, unknown kind
    assert len(str(rejected.value)) < 2_000 and "共 10000 处问题" in str(rejected.value)


def test_error_log_keeps_the_first_problems() -> None:
    log = ErrorLog(limit=3)
    log.extend(RowError(i, "坏") for i in range(10))
    assert [e.line for e in log.errors] == [0, 1, 2] and log.total == 10 and bool(log)


# --- caps ------------------------------------------------------------------------------------------------------


def test_rows_columns_and_bytes_are_capped() -> None:
    small = Limits(max_rows=10, max_columns=5, max_bytes=2_000)
    body = "a,b\n" + "1,2\n" * 11
    with pytest.raises(ImportRejected, match="超过 10 行"):
        list(read_rows(body, ("a",), limits=small))
    assert len(list(read_rows("a,b\n" + "1,2\n" * 10, ("a",), limits=small))) == 10
    with pytest.raises(ImportRejected, match="列数过多"):
        list(read_rows(",".join("abcdef") + "\n1,2,3,4,5,6\n", ("a",), limits=small))
    with pytest.raises(ImportRejected, match="文件过大"):
        list(read_rows("a\n" + "1\n" * 1_500, ("a",), limits=small))


def test_reading_stops_when_the_time_is_up() -> None:
    ticks: Iterator[float] = iter(range(0, 10**9, 1_000))

    def clock() -> float:
        return float(next(ticks))

    with pytest.raises(ImportRejected, match="超时"):
        list(read_rows("a\n" + "1\n" * 1_000, ("a",), limits=Limits(seconds=5), clock=clock))


def test_an_xlsx_with_a_stray_cell_far_away_is_refused_quickly() -> None:
    # One cell at row 1,000,000 / column 16,000: openpyxl pads every row and fills every gap up to it.
    data = xlsx([["instance_id", "community"], ["A-1", "C1"]], at=(1_000_000, 16_000))
    with pytest.raises(ImportRejected, match="超过 50000 行"):
        list(xlsx_rows(data) or [])
    rows = list(xlsx_rows(xlsx([["instance_id", "community"], ["A-1", "C1"]], at=(3, 16_000))) or [])
    assert rows == [(2, {"instance_id": "A-1", "community": "C1"})]


def test_a_zip_bomb_is_refused_before_it_is_inflated() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/sharedStrings.xml", b"0" * (XLSFORM_LIMITS.max_bytes + 1))
    assert len(buffer.getvalue()) < 100_000
    with pytest.raises(ImportRejected, match="解压后过大"):
        check_xlsx(buffer.getvalue(), XLSFORM_LIMITS)
    with pytest.raises(ImportRejected, match="解压后过大"):
        parse_xlsform(buffer.getvalue())


def test_check_xlsx_counts_rows_per_sheet_and_refuses_non_zip() -> None:
    data = xlsx([[i, i] for i in range(30)])
    check_xlsx(data, Limits(max_rows=29))
    with pytest.raises(ImportRejected, match="行数过多"):
        check_xlsx(data, Limits(max_rows=20))
    with pytest.raises(ImportRejected, match="无法读取文件"):
        check_xlsx(b"not a zip")


def test_xlsform_cells_are_checked_and_its_sheets_capped() -> None:
    survey = [["type", "name", "label"], ["text", "q1", "问题\u202e一"]]
    with pytest.raises(ImportRejected) as rejected:
        parse_xlsform(xlsx(survey, title="survey"))
    assert "控制字符" in messages(rejected)
    many = [["type", "name", "label"], *(["text", f"q{i}", "问"] for i in range(XLSFORM_LIMITS.max_rows + 1))]
    with pytest.raises(ImportRejected, match="行"):
        parse_xlsform(xlsx(many, title="survey"))
