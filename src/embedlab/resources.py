"""Files that ship inside installed packages (leaf: models/ and data/ both read them)."""

from __future__ import annotations

from pathlib import Path

from embedlab.errors import DataError


def gensim_test_file(name: str) -> Path:
    """Path of a file in gensim's bundled test data (without importing gensim itself)."""
    import importlib.util

    spec = importlib.util.find_spec("gensim")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("The embedded Lee data comes with gensim. Fix: pip install gensim==4.4.0")
    path = Path(next(iter(spec.submodule_search_locations))) / "test" / "test_data" / name
    if not path.exists():
        raise DataError(f"gensim's test data lacks {name} (looked at {path}); reinstall gensim.")
    return path
