"""Reading the data files every loader shares (JSON Lines, CSV / TSV, plain lines), with errors
that name the file and line and say how to fix them, plus the seeded subsample quick runs use."""

from __future__ import annotations

import csv
import gzip
import json
import random
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from embedlab.errors import DataError

T = TypeVar("T")


def under_root(root: str | None, name: str) -> Path:
    """``name`` as a path; a relative one resolves against ``root`` when there is one."""
    path = Path(name).expanduser()
    return Path(root).expanduser() / path if root and not path.is_absolute() else path


def seeded_subsample(items: list[T], limit: int | None, seed: int) -> list[T]:
    """At most ``limit`` items, drawn with ``seed``, in their original order."""
    if limit is None or len(items) <= limit:
        return items
    return [items[i] for i in sorted(random.Random(seed).sample(range(len(items)), limit))]


def data_file(root: str | None, name: str, what: str, fix: str) -> Path:
    """``name`` under ``root``, which must be a file; else a DataError with ``fix`` and, when the folder
    is there (a wrong file name is likelier then), the files it holds."""
    path = under_root(root, name)
    if path.is_file():
        return path
    if path.exists():
        raise DataError(f"{what} is not a file: {path}. Fix: {fix}")
    held = ""
    if path.parent.is_dir():
        present = sorted(p.name for p in path.parent.iterdir() if p.is_file())
        held = f"The folder holds {len(present)} files ({', '.join(present[:12])}{', ...' * (len(present) > 12)}).\n"
    where = (
        "set the data root with the EMBEDLAB_DATA environment variable or paths.data_dir=..."
        if root
        else f"check the path (a relative one is read from the working directory, {Path.cwd()})"
    )
    raise DataError(f"{what} not found: {path}\n{held}Fix: {where}, {fix}")


@contextmanager
def decoding(where: object, encoding: str = "utf-8") -> Iterator[None]:
    """Turn a decoding error while reading ``where`` into a DataError naming the byte and the fix."""
    try:
        yield
    except UnicodeDecodeError as exc:
        name = "UTF-8" if encoding.lower().replace("-", "") == "utf8" else encoding
        raise DataError(
            f"{where} is not valid {name} (byte {exc.object[exc.start]:#04x} at {exc.start + 1}). Fix: re-save "
            f"it as {name} (e.g. iconv -f latin1 -t utf-8) or, for a text corpus, set data.encoding."
        ) from None


def read_lines(path: Path, encoding: str = "utf-8") -> list[str]:
    """Lines split on "\\n" only (str.splitlines also breaks on U+2028 inside a sentence)."""
    with decoding(path, encoding):
        lines = path.read_text(encoding=encoding).split("\n")
    if lines[-1] == "":
        lines.pop()
    return [ln.rstrip("\r") for ln in lines]


def read_jsonl(
    path: Path, fields: tuple[str, ...] = (), *, encoding: str = "utf-8"
) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line (``.gz`` read transparently); every object
    must hold ``fields``. Read as bytes, so a decoding error can name its line."""
    with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as fh:
        for n, raw in enumerate(fh, start=1):
            with decoding(f"{path}:{n}", encoding):
                line = raw.decode(encoding)
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


def _pick(record: Any, keys: Sequence[str | int], where: str, available: object, fix: str) -> list[Any]:
    out = []
    for key in keys:
        try:
            out.append(record[key])
        except (KeyError, IndexError, TypeError):
            raise DataError(
                f"{where}: column {key!r} not found. Available columns: {available}. {fix}"
            ) from None
    return out


def table_rows(
    path: Path,
    columns: Sequence[str | int],
    fix: str,
    *,
    delimiter: str | None = None,
    has_header: bool = True,
    encoding: str = "utf-8",
    quoting: int = csv.QUOTE_MINIMAL,
) -> Iterator[tuple[list[Any], str]]:
    """The values of ``columns`` in each data row of a CSV / TSV / JSONL file, with "file:line".

    Columns are header names (JSON keys) or 0-based indices when the file has no header; ``fix``
    ends the error for a missing column. The delimiter defaults by extension (.tsv / .tab tab, else comma).
    """
    if path.suffix in {".jsonl", ".json"}:
        for n, rec in read_jsonl(path, encoding=encoding):
            yield _pick(rec, columns, f"{path.name}:{n}", sorted(rec), fix), f"{path.name}:{n}"
        return
    with path.open(encoding=encoding, newline="") as fh, decoding(path, encoding):
        delimiter = delimiter or ("\t" if path.suffix in {".tsv", ".tab"} else ",")
        reader = csv.reader(fh, delimiter=delimiter, quoting=quoting)
        header = next(reader, None) if has_header else None
        if has_header and header is None:
            raise DataError(f"{path} is empty (expected a header line).")
        if header is not None:
            _pick(dict.fromkeys(header), columns, str(path), header, fix)
        for i, row in enumerate(reader, 2 if has_header else 1):
            where = f"{path.name}:{i}"
            if not row:
                continue
            if header is None:
                yield _pick(row, columns, where, f"indices 0..{len(row) - 1}", fix), where
                continue
            if len(row) != len(header):
                raise DataError(f"{path}:{i}: {len(row)} fields but the header has {len(header)}.")
            yield _pick(dict(zip(header, row, strict=True)), columns, where, header, fix), where
