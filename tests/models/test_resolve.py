"""Model resolution: local folders, packaged models, and a fast, clear offline failure."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from embedlab.errors import ModelUnavailableError
from embedlab.models.encoder import EncoderSpec, build_encoder
from embedlab.models.resolve import resolve_model


def test_missing_hub_model_fails_fast_and_says_how(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path))  # an empty cache
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    start = time.perf_counter()
    with pytest.raises(ModelUnavailableError) as err:
        resolve_model("google-bert/bert-base-uncased")
    assert time.perf_counter() - start < 10
    message = str(err.value)
    assert (
        "google-bert/bert-base-uncased" in message and "hf download" in message and "model=minilm" in message
    )


def test_hf_hub_offline_is_respected(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelUnavailableError, match="HF_HUB_OFFLINE"):
        resolve_model("FacebookAI/roberta-base")


def test_packaged_minilm_resolves_offline() -> None:
    resolved = resolve_model("sentence-transformers/all-MiniLM-L6-v2", packaged="minilm")
    assert resolved.source == "packaged:minilm" and (resolved.path / "model.safetensors").exists()


def test_local_folder_and_missing_folder(tiny_model_dirs: dict[str, Path]) -> None:
    folder = tiny_model_dirs["bert"]
    assert resolve_model(str(folder)).source == "local"
    with pytest.raises(ModelUnavailableError, match="does not exist"):
        resolve_model(str(folder / "nope" / "deeper"))


def test_corrupt_model_folder_is_a_clear_error(tiny_model_dirs: dict[str, Path], tmp_path: Path) -> None:
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dirs["bert"], broken)
    (broken / "config.json").write_text("{ not json")
    with pytest.raises(ModelUnavailableError, match="could not be loaded"):
        build_encoder(EncoderSpec(name="broken", name_or_path=str(broken)))


def test_unknown_packaged_name() -> None:
    with pytest.raises(ModelUnavailableError, match="Unknown packaged model"):
        resolve_model(None, packaged="gpt5")
