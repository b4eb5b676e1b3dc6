"""Where files live (leaf: models/ and data/ both use it): data shipped inside installed packages,
and the cache of what models/ builds once, published atomically so a crash never leaves a
half-written folder that a later run would trust."""

from __future__ import annotations

import importlib.util
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from embedlab.errors import DataError


def package_dir(name: str) -> Path:
    """Folder of an installed package whose import name is ``name`` (hyphens included)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(name)
    return Path(next(iter(spec.submodule_search_locations)))


def gensim_test_file(name: str) -> Path:
    """Path of a file in gensim's bundled test data (without importing gensim itself)."""
    try:
        path = package_dir("gensim") / "test" / "test_data" / name
    except ModuleNotFoundError:
        raise DataError("The embedded Lee data comes with gensim. Fix: pip install gensim==4.4.0") from None
    if not path.exists():
        raise DataError(f"gensim's test data lacks {name} (looked at {path}); reinstall gensim.")
    return path


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
