"""Reading uploaded tables (CSV and XLSX) as bounded streams, and the error report shared by every import.

Every import goes through :func:`read_rows` (CSV) or :func:`xlsx_rows` (first or named sheet of an
XLSX), which refuse a file past its :class:`Limits` — bytes (for XLSX: the uncompressed size of the zip),
rows, columns, characters per cell and seconds — and check every cell with the shared validator of
``core.inputs`` (no NUL or other control characters). :func:`check_xlsx` is the file-level check alone,
for parsers that read the workbook themselves (pyxform). :class:`ErrorLog` keeps the first
``MAX_REPORTED`` problems and counts the rest, so a broken file yields a short report, not megabytes.
"""

from __future__ import annotations

import csv
import io
import re
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from core.i18n import N_
from core.inputs import forbidden_character

MAX_REPORTED = 200  # problems listed per file; the total is counted beyond that


@dataclass(frozen=True)
class Limits:
    """Caps of one kind of upload; a file past any of them is refused as a whole, with the reason."""

    max_bytes: int = 50 * 1024 * 1024  # CSV bytes, or the uncompressed size of an XLSX's parts
    max_rows: int = 50_000  # data rows (blank rows count: a sheet can declare a million of them)
    max_columns: int = 200
    max_cell_chars: int = 10_000
    max_sheets: int = 20
    seconds: float = 300.0  # reading time; large files are read by a job, outside the web process


DEFAULT_LIMITS = Limits()
# An XLSForm is a few hundred rows of questions and choices.
XLSFORM_LIMITS = Limits(max_bytes=10 * 1024 * 1024, max_rows=5_000, max_columns=60, seconds=20.0)


@dataclass(frozen=True)
class RowError:
    """One rejected row: its line number in the file, the column (if known), why, and the offending
    value (if known, as read from the file)."""

    line: int
    message: str
    column: str | None = None
    value: str | None = None

    def __str__(self) -> str:
        shown = f" = {self.value}" if self.value and self.column else ""
        where = f"第 {self.line} 行" + (f"（{self.column}{shown}）" if self.column else "")
        return f"{where}：{self.message}"


@dataclass
class ErrorLog:
    """The first ``limit`` problems of a file and the count of all of them."""

    limit: int = MAX_REPORTED
    errors: list[RowError] = field(default_factory=list)
    total: int = 0

    def add(self, error: RowError) -> None:
        """Record one problem (kept only while fewer than ``limit`` are listed)."""
        self.total += 1
        if len(self.errors) < self.limit:
            self.errors.append(error)

    def extend(self, errors: Iterable[RowError]) -> None:
        """Record several problems."""
        for error in errors:
            self.add(error)

    def __bool__(self) -> bool:
        return self.total > 0

    def rejected(self) -> ImportRejected:
        """The ImportRejected carrying these problems."""
        return ImportRejected(self.errors, total=self.total)


class ImportRejected(ValueError):
    """A file with bad rows; nothing of it was applied. ``errors`` lists at most MAX_REPORTED of ``total``."""

    code = "import_rejected"

    def __init__(self, errors: Iterable[RowError], total: int | None = None) -> None:
        listed: list[RowError] = []
        count = 0
        for error in errors:
            count += 1
            if len(listed) < MAX_REPORTED:
                listed.append(error)
        self.errors = listed
        self.total = max(total or 0, count)
        message = "；".join(str(e) for e in self.errors[:20])
        if self.total > len(self.errors[:20]):
            message += f"；……共 {self.total} 处问题"
        super().__init__(message)


def _refuse(message: str, line: int = 1) -> ImportRejected:
    return ImportRejected([RowError(line, message)])


class _Clock:
    """The time budget of one file."""

    def __init__(self, seconds: float, now: Callable[[], float] = time.monotonic) -> None:
        self.now, self.deadline, self.seconds = now, now() + seconds, seconds

    def check(self, line: int) -> None:
        if self.now() > self.deadline:
            raise _refuse(
                N_("文件处理超时（超过 %(s)s 秒，停在第 %(line)s 行），请拆分为较小的文件后重试")
                % {"s": f"{self.seconds:g}", "line": line},
                line,
            )


def decode(data: bytes | str) -> str:
    """Decode an uploaded CSV: UTF-8 (with or without BOM), falling back to GB18030 as Excel writes it."""
    if isinstance(data, str):
        return data.lstrip("\ufeff")
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise _refuse("文件编码无法识别，请保存为 UTF-8 CSV")


def cell_problems(line: int, row: dict[str, str], limits: Limits) -> list[RowError]:
    """Cells that hold control characters or more than ``limits.max_cell_chars`` characters."""
    problems = []
    for column, value in row.items():
        if forbidden_character(value) is not None:
            problems.append(RowError(line, N_("含有控制字符或不可见的格式字符"), column))
        elif len(value) > limits.max_cell_chars:
            problems.append(
                RowError(line, N_("单元格过长（最多 %(n)s 个字符）") % {"n": limits.max_cell_chars}, column)
            )
    return problems


def _bounded(
    rows: Iterator[tuple[int, dict[str, str]]],
    limits: Limits,
    errors: ErrorLog | None,
    clock: _Clock,
) -> Iterator[tuple[int, dict[str, str]]]:
    """Apply the row cap, the clock and the cell check; bad rows go to ``errors`` (raised at the end if None)."""
    own = errors if errors is not None else ErrorLog()
    count = 0
    for line, row in rows:
        count += 1
        if count > limits.max_rows:
            raise _refuse(N_("文件超过 %(n)s 行，请拆分后分批导入") % {"n": limits.max_rows}, line)
        if count % 256 == 0:
            clock.check(line)
        problems = cell_problems(line, row, limits)
        if problems:
            own.extend(problems)
            continue
        if any(row.values()):
            yield line, row
    if errors is None and own:
        raise own.rejected()


def read_rows(
    data: bytes | str,
    required: Iterable[str],
    *,
    limits: Limits = DEFAULT_LIMITS,
    errors: ErrorLog | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield (line number, row) of a CSV with stripped values, within ``limits``.

    A missing required column or a file past a cap rejects the file. A row with a bad cell is not
    yielded: it goes to ``errors`` when given (imports that keep good rows), else the whole file is
    rejected once every row has been read (all-or-nothing imports).
    """
    size = len(data.encode() if isinstance(data, str) else data)
    if size > limits.max_bytes:
        raise _refuse(N_("文件过大（最多 %(n)s MB）") % {"n": limits.max_bytes // (1024 * 1024)})
    text = decode(data)
    reader = csv.reader(io.StringIO(text, newline=""))
    timer = _Clock(limits.seconds, clock)

    def rows() -> Iterator[tuple[int, dict[str, str]]]:
        try:
            header = next(reader, [])
            columns = [c.strip() for c in header]
            if len(columns) > limits.max_columns:
                raise _refuse(N_("列数过多（最多 %(n)s 列）") % {"n": limits.max_columns})
            missing = [c for c in required if c not in columns]
            if missing:
                raise _refuse(f"缺少列：{', '.join(missing)}")
            blank = {c: "" for c in columns if c}
            for values in reader:
                cells = dict(blank)
                cells.update((c, (v or "").strip()) for c, v in zip(columns, values, strict=False) if c)
                yield reader.line_num, cells
        except csv.Error as exc:
            raise _refuse(N_("CSV 格式错误：%(e)s") % {"e": exc}, reader.line_num or 1) from exc

    return _bounded(rows(), limits, errors, timer)


# ------------------------------------------------------------------------------------------------- XLSX

_ROW_TAG = re.compile(rb"<(?:\w+:)?row[\s>/]")
_CELL_TAG = re.compile(rb"<(?:\w+:)?c[\s>/]")


def check_xlsx(data: bytes, limits: Limits = DEFAULT_LIMITS) -> None:
    """File-level bounds of an XLSX before any parser reads it: a valid zip, at most ``max_bytes``
    uncompressed (zip bombs), ``max_sheets`` sheets, and per sheet at most ``max_rows`` rows and
    ``max_rows * max_columns`` cells (counted by streaming the sheet XML, without building it)."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise _refuse("无法读取文件，请上传 .xlsx 格式的 Excel 文件") from exc
    with archive:
        entries = archive.infolist()
        if sum(e.file_size for e in entries) > limits.max_bytes or len(entries) > 10_000:
            raise _refuse(N_("文件解压后过大（最多 %(n)s MB）") % {"n": limits.max_bytes // (1024 * 1024)})
        sheets = [
            e for e in entries if e.filename.startswith("xl/worksheets/") and e.filename.endswith(".xml")
        ]
        if len(sheets) > limits.max_sheets:
            raise _refuse(N_("工作表过多（最多 %(n)s 个）") % {"n": limits.max_sheets})
        for entry in sheets:
            _count_sheet(archive, entry, limits)


def _count_sheet(archive: zipfile.ZipFile, entry: zipfile.ZipInfo, limits: Limits) -> None:
    rows = cells = 0
    tail = b""
    with archive.open(entry) as stream:
        while chunk := stream.read(1 << 20):
            window = tail + chunk
            # Count tags starting before the last 16 bytes; those are re-read with the next chunk.
            cut = max(len(window) - 16, 0)
            rows += sum(1 for m in _ROW_TAG.finditer(window) if m.start() < cut)
            cells += sum(1 for m in _CELL_TAG.finditer(window) if m.start() < cut)
            tail = window[cut:]
    rows += len(_ROW_TAG.findall(tail))
    cells += len(_CELL_TAG.findall(tail))
    if rows > limits.max_rows + 1:  # + the header row
        raise _refuse(N_("工作表行数过多（最多 %(n)s 行），请拆分后分批导入") % {"n": limits.max_rows})
    if cells > (limits.max_rows + 1) * limits.max_columns:
        raise _refuse(N_("工作表单元格过多（最多 %(n)s 列）") % {"n": limits.max_columns})


def cell_text(value: Any) -> str:
    """A cell as text; integral floats lose their ".0" (Excel stores 3 as 3.0)."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def open_workbook(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Any:
    """An openpyxl read-only workbook, after :func:`check_xlsx`; ImportRejected when unreadable."""
    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    check_xlsx(data, limits)
    try:
        return load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
        raise _refuse("无法读取文件，请上传 .xlsx 格式的 Excel 文件") from exc


def xlsx_rows(
    data: bytes | Any,
    sheet: str | None = None,
    *,
    limits: Limits = DEFAULT_LIMITS,
    errors: ErrorLog | None = None,
    lower_header: bool = False,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[tuple[int, dict[str, str]]] | None:
    """(row number, values) of the first (or the named, case-insensitive) sheet, within ``limits``;
    None when the named sheet is absent. ``data`` is the file's bytes or a workbook from open_workbook."""
    workbook = open_workbook(bytes(data), limits) if isinstance(data, bytes | bytearray) else data
    if sheet is None:
        worksheet = workbook[workbook.sheetnames[0]]
    else:
        name = next((s for s in workbook.sheetnames if s.strip().lower() == sheet), None)
        if name is None:
            return None
        worksheet = workbook[name]
    timer = _Clock(limits.seconds, clock)
    # max_col: a sheet that declares (or has a stray cell in) column XFD would pad every row to 16,384.
    values = worksheet.iter_rows(values_only=True, max_col=limits.max_columns + 1)
    header_values = next(values, ())
    if len(header_values) > limits.max_columns and any(
        v is not None for v in header_values[limits.max_columns :]
    ):
        raise _refuse(N_("列数过多（最多 %(n)s 列）") % {"n": limits.max_columns})
    header = [cell_text(v) for v in header_values[: limits.max_columns]]
    if lower_header:
        header = [h.lower() for h in header]

    def rows() -> Iterator[tuple[int, dict[str, str]]]:
        for number, cells in enumerate(values, start=2):
            yield (
                number,
                {header[i]: cell_text(v) for i, v in enumerate(cells) if i < len(header) and header[i]},
            )

    return _bounded(rows(), limits, errors, timer)
