"""Shared fixtures: config composition, tiny models built once per session, data paths."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf, open_dict

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def shared_data_dir() -> Path | None:
    """The benchmark data: $EMBEDLAB_DATA, else ../shared/data beside the checkout."""
    env = os.environ.get("EMBEDLAB_DATA")
    candidates = [Path(env)] if env else []
    candidates.append(ROOT.parent / "shared" / "data")
    return next((p for p in candidates if (p / "stsb").is_dir()), None)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = shared_data_dir()
    if path is None:
        pytest.skip(
            "benchmark data not found: set EMBEDLAB_DATA to the folder holding stsb/, scifact_beir/, ..."
        )
    return path


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Tiny models and unpacked packaged models go to a per-session cache unless told otherwise."""
    if "EMBEDLAB_CACHE" not in os.environ:
        os.environ["EMBEDLAB_CACHE"] = str(tmp_path_factory.mktemp("embedlab-cache"))


@pytest.fixture(scope="session")
def tiny_model_dirs() -> dict[str, Path]:
    """One tiny randomly initialised model per architecture, built once per session."""
    from embedlab.models.tiny import ARCHITECTURES, build_tiny_model

    return {arch: build_tiny_model(arch) for arch in ARCHITECTURES}


@pytest.fixture(scope="session")
def minilm():
    """The packaged all-MiniLM-L6-v2, loaded once."""
    from embedlab.models.encoder import EncoderSpec, build_encoder

    model, _ = build_encoder(
        EncoderSpec(name="minilm", name_or_path="sentence-transformers/all-MiniLM-L6-v2", packaged="minilm")
    )
    return model


ComposeFn = Callable[..., DictConfig]


@pytest.fixture
def make_cfg(tmp_path: Path) -> ComposeFn:
    """Compose a config as `python <task>.py <overrides>` would, writing into tmp_path."""

    def _make(*overrides: str, task: str = "train", output_dir: Path | None = None) -> DictConfig:
        with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
            cfg = compose(config_name=task, overrides=list(overrides))
        with open_dict(cfg):
            cfg.paths.output_dir = str(output_dir or tmp_path)
            if shared_data_dir() is not None and "paths.data_dir" not in " ".join(overrides):
                cfg.paths.data_dir = str(shared_data_dir())
        OmegaConf.resolve(cfg)
        return cfg

    return _make


@pytest.fixture
def slurm() -> None:
    """A running SLURM for the cluster tests, or a skip with the reason (slurm/setup_local_slurm.sh)."""
    if shutil.which("sinfo") is None:
        pytest.skip("sinfo not found: no SLURM on this machine (bash slurm/setup_local_slurm.sh starts one)")
    proc = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=30)
    states = proc.stdout.split()
    if proc.returncode != 0 or not any(s.rstrip("*~#") in {"idle", "mixed", "allocated"} for s in states):
        pytest.skip(f"SLURM has no usable node (sinfo: {states or proc.stderr.strip()})")
