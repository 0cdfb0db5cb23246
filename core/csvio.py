"""CSV reading with line numbers, and the all-or-nothing error report shared by every import."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class RowError:
    """One rejected row: its line number in the file, the column (if known) and why."""

    line: int
    message: str
    column: str | None = None

    def __str__(self) -> str:
        where = f"第 {self.line} 行" + (f"（{self.column}）" if self.column else "")
        return f"{where}：{self.message}"


class ImportRejected(ValueError):
    """A file with bad rows; nothing of it was applied."""

    code = "import_rejected"

    def __init__(self, errors: Iterable[RowError]) -> None:
        self.errors = list(errors)
        super().__init__("；".join(str(e) for e in self.errors[:20]))


def decode(data: bytes | str) -> str:
    """Decode an uploaded CSV: UTF-8 (with or without BOM), falling back to GB18030 as Excel writes it."""
    if isinstance(data, str):
        return data.lstrip("\ufeff")
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise ImportRejected([RowError(1, "文件编码无法识别，请保存为 UTF-8 CSV")])


def read_rows(data: bytes | str, required: Iterable[str]) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield (line number, row) with stripped values; a missing required column rejects the file."""
    reader = csv.DictReader(io.StringIO(decode(data)))
    columns = [c.strip() for c in reader.fieldnames or []]
    missing = [c for c in required if c not in columns]
    if missing:
        raise ImportRejected([RowError(1, f"缺少列：{', '.join(missing)}")])
    reader.fieldnames = columns
    for row in reader:
        values = {k: (v or "").strip() for k, v in row.items() if k is not None}
        if not any(values.values()):
            continue
        yield reader.line_num, values
