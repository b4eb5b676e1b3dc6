"""JSON Lines input with errors that name the file and line."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from embedlab.errors import DataError


def read_jsonl(
    path: Path, fields: tuple[str, ...] = (), *, encoding: str = "utf-8"
) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line (``.gz`` read transparently); every
    object must hold ``fields``. Read as bytes, so a decoding error can name its line."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        for n, raw in enumerate(fh, start=1):
            try:
                line = raw.decode(encoding)
            except UnicodeDecodeError as exc:
                name = "UTF-8" if encoding.lower().replace("-", "") == "utf8" else encoding
                raise DataError(
                    f"{path}:{n} is not valid {name} (byte {raw[exc.start]:#04x} at column {exc.start + 1}); "
                    f"re-save the file as {name}."
                ) from None
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{n} is not valid JSON ({exc.msg}).") from None
            if not isinstance(row, dict):
                raise DataError(f"{path}:{n} is a JSON {type(row).__name__}, expected an object per line.")
            missing = [f for f in fields if f not in row]
            if missing:
                raise DataError(
                    f"{path}:{n} has no {', '.join(repr(f) for f in missing)} field (has {sorted(row)})."
                )
            yield n, row
