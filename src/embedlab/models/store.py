"""Where models/ keeps what it builds once, written atomically: a crash never leaves a half-written
folder that a later run would trust."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def cache_root() -> Path:
    """``EMBEDLAB_CACHE``, else ~/.cache/embedlab."""
    return Path(os.environ.get("EMBEDLAB_CACHE") or os.path.join(Path.home(), ".cache", "embedlab"))


@contextmanager
def publish_dir(target: Path, marker: str) -> Iterator[Path]:
    """An empty staging folder, renamed onto ``target`` when the block succeeds (removed if it fails);
    if another job published a complete ``target`` (holding ``marker``) first, its copy is kept."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{target.name}.") as tmp:
        staged = Path(tmp) / target.name
        staged.mkdir()
        yield staged
        try:
            staged.rename(target)  # atomic on one filesystem
        except OSError:
            if not (target / marker).exists():  # lost a race to another job: fine
                raise
