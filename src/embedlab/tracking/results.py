"""results.json: flat ``split/dataset/metric`` metrics plus a meta block that makes a run
reproducible, written atomically so a crash never leaves a half-written file the report trusts."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

TRACKED_PACKAGES = (
    "embedlab torch transformers sentence-transformers lightning hydra-core faiss-cpu wandb numpy scipy "
    "scikit-learn tokenizers"
).split()
# A key is secret when its last word is one of these (so "hf_token" is, "max_tokens" is not).
SECRET_KEY = re.compile(r"(^|[_\-.])(api_?key|token|secret|password|passwd)$", re.IGNORECASE)


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def package_versions() -> dict[str, str]:
    return {"python": sys.version.split()[0], **{name: _version(name) for name in TRACKED_PACKAGES}}


def git_state(repo_dir: str | Path) -> dict[str, Any]:
    """HEAD sha and whether the work tree had uncommitted changes."""

    def run(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=repo_dir, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()

    try:
        return {"sha": run("rev-parse", "HEAD"), "dirty": bool(run("status", "--porcelain"))}
    except (OSError, subprocess.SubprocessError):
        return {"sha": None, "dirty": None}


def redact(obj: Any) -> Any:
    """Drop values whose key looks like a secret (API keys, tokens) from nested dicts."""
    if isinstance(obj, dict):
        return {k: ("<redacted>" if SECRET_KEY.search(str(k)) and v else redact(v)) for k, v in obj.items()}
    if isinstance(obj, list):
        return [redact(v) for v in obj]
    return obj


def atomic_write_text(path: str | Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_results(
    path: str | Path,
    metrics: dict[str, float],
    meta: dict[str, Any],
    *,
    intervals: dict[str, Any] | None = None,
    comparisons: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write results.json; metrics must be finite-or-NaN floats keyed split/dataset/metric.
    ``intervals`` / ``comparisons`` are keyed like the metrics (see ``tasks/uncertainty.py``)."""
    clean: dict[str, float | None] = {}
    for key, value in sorted(metrics.items()):
        if key.count("/") < 2:
            raise ValueError(f"metric key {key!r} must read split/dataset/metric")
        value = float(value)
        clean[key] = None if math.isnan(value) else value  # JSON has no NaN
    payload = {
        "metrics": clean,
        "intervals": intervals or {},
        "comparisons": comparisons or {},
        "meta": redact(meta),
    }
    atomic_write_text(path, json.dumps(payload, indent=2, sort_keys=False, default=str) + "\n")
    return payload


def read_results(path: str | Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text(encoding="utf-8"))
