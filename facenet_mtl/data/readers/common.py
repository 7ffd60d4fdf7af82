"""Small helpers the native readers share: layout checks that fail with a fixable `DataError`."""
from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from facenet_mtl.errors import DataError

if TYPE_CHECKING:
    from facenet_mtl.data.readers.base import ReadResult

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


def existing_path(source: str | Path, layout: str) -> Path:
    """`source` as a Path; a `DataError` quoting the expected `layout` if it does not exist."""
    path = Path(source)
    if not path.exists():
        raise DataError(path, "source path not found", f"point --source at: {layout}")
    return path


def require_file(path: str | Path, what: str, fix: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise DataError(path, f"missing {what}", fix)
    return path


def read_csv(path: str | Path, required_columns: Sequence[str], fix: str | None = None) -> list[dict[str, str]]:
    """Rows of a csv file with a header, as dicts of strings; a `DataError` naming any missing
    column, a row with fewer fields than the header (a truncated or damaged file), or a file
    that is not UTF-8 csv. Fields beyond the header's are ignored."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            header = [name.strip() for name in reader.fieldnames or []]
            missing = [c for c in required_columns if c not in header]
            if missing:
                raise DataError(path, f"csv is missing column(s) {', '.join(repr(c) for c in missing)}; "
                                      f"header is {header}",
                                fix or f"expected the columns {', '.join(required_columns)}")
            reader.fieldnames = header
            rows = []
            for row in reader:
                if None in row.values():
                    raise DataError(path, f"line {reader.line_num} has fewer fields than the header "
                                          f"({len(header)}): the file is truncated or damaged",
                                    "restore the complete file (download or extract it again)")
                row.pop(None, None)
                rows.append(row)
            return rows
    except UnicodeDecodeError as exc:
        raise DataError(path, f"not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start})",
                        "save the csv as UTF-8, or restore the original file") from None
    except csv.Error as exc:
        raise DataError(path, f"not a readable csv file ({exc})", "restore the original file") from None


def read_text(path: str | Path, fix: str = "restore the original file") -> str:
    """The text of a UTF-8 file; a `DataError` naming the file if it is not UTF-8."""
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(path, f"not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start})",
                        fix) from None


def image_files(directory: str | Path) -> list[Path]:
    """Image files directly in `directory`, sorted by name."""
    return sorted(p for p in Path(directory).iterdir()
                  if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def keep_first(result: ReadResult, limit: int | None) -> ReadResult:
    """Keep `limit` records of `result` (all when `limit` is None or 0), evenly spread over the
    reader's deterministic order, so a smoke-sized slice still has every split and class."""
    records = result.records
    if limit and len(records) > int(limit):
        step = len(records) / int(limit)
        result.records = [records[int(i * step)] for i in range(int(limit))]
    return result


def as_float(text: str) -> float:
    """`text` as a float; NaN for anything that is not a finite number (so rules treat inf as bad)."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        return float("nan")
    return value if math.isfinite(value) else float("nan")
