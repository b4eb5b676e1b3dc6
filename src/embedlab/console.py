"""What embedlab shows on the console besides its own log: tqdm progress bars (the library Lightning and
sentence-transformers draw theirs with) on stderr, on only for a terminal unless ``EMBEDLAB_PROGRESS``
says otherwise (0: never, 1: always), and third-party log noise silenced where it is emitted."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
from collections.abc import Iterable, Iterator
from typing import Any

PROGRESS_ENV = "EMBEDLAB_PROGRESS"
# Lightning's rank-zero log: keeps "GPU available" and the like, drops its litlogger/litmodels adverts.
_LIGHTNING_LOG = "lightning.pytorch.utilities.rank_zero"


def progress_enabled() -> bool:
    """``EMBEDLAB_PROGRESS=0|1`` forces bars off or on; unset, they show when stderr is a terminal
    (test runs and CI logs stay clean)."""
    flag = os.environ.get(PROGRESS_ENV, "").strip().lower()
    if flag in {"0", "false", "no", "off"}:
        return False
    if flag in {"1", "true", "yes", "on"}:
        return True
    return sys.stderr.isatty()


def progress(iterable: Iterable[Any] | None = None, *, disable: bool = False, **kw: Any) -> Any:
    """A tqdm bar on stderr over ``iterable`` (or updated by hand with ``total=``), off when
    :func:`progress_enabled` says so or ``disable`` (e.g. a single step) is true."""
    from tqdm.auto import tqdm

    return tqdm(iterable, file=sys.stderr, disable=disable or not progress_enabled(), **kw)


@contextlib.contextmanager
def third_party_bars() -> Iterator[None]:
    """For libraries that always draw bars (sentence-transformers' hard-negative miner): their stderr
    is discarded while :func:`progress_enabled` is false. Log handlers keep their own stream."""
    with contextlib.redirect_stderr(io.StringIO()) if not progress_enabled() else contextlib.nullcontext():
        yield


class _DropAdverts(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡 Tip")


def quiet_third_party_logs() -> None:
    """faiss's loader logs each instruction set it fails to load (``ModuleNotFoundError(... avx512_spr)``)
    at INFO: only its warnings pass. Lightning's tips to install litlogger / litmodels are dropped."""
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)
    rank_zero = logging.getLogger(_LIGHTNING_LOG)
    if not any(isinstance(f, _DropAdverts) for f in rank_zero.filters):
        rank_zero.addFilter(_DropAdverts())
