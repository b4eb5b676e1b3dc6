"""Device and precision decisions (embedlab.devices), tested without a GPU: CUDA's state is passed in
or torch.cuda is monkeypatched. cpu / cuda / auto, with and without CUDA, LOCAL_RANK, the errors."""

from __future__ import annotations

import platform
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from embedlab.config import compose_specs
from embedlab.devices import device_name, encode_precision, follow_trainer, resolve_device, trainer_device
from embedlab.encode.encoder import Encoder, EncodeSettings
from embedlab.errors import ConfigError


def fake_cuda(monkeypatch: pytest.MonkeyPatch, count: int, bf16: bool = True) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)


@pytest.mark.parametrize(
    ("setting", "count", "rank", "expected"),
    [
        ("cpu", 0, 0, "cpu"),
        ("cpu", 4, 2, "cpu"),  # explicit cpu wins over a visible GPU
        ("auto", 0, 0, "cpu"),
        ("auto", 2, 0, "cuda:0"),
        ("auto", 4, 3, "cuda:3"),  # one GPU per torchrun / DDP rank
        ("cuda", 1, 0, "cuda:0"),
        ("cuda", 1, 3, "cuda:0"),  # a SLURM task that sees only its own GPU
        ("cuda:1", 2, 0, "cuda:1"),
    ],
)
def test_resolve_device(setting: str, count: int, rank: int, expected: str) -> None:
    assert resolve_device(setting, cuda_count=count, local_rank=rank) == expected


def test_cuda_without_a_gpu_says_how_to_fix() -> None:
    with pytest.raises(ConfigError, match="torch sees no CUDA GPU.*encode.device=cpu or auto"):
        resolve_device("cuda", cuda_count=0)
    with pytest.raises(ConfigError, match="only 2 GPU"):
        resolve_device("cuda:2", cuda_count=2)


@pytest.mark.parametrize("bad", ["gpu", "tpu", "cuda:x", "", None])
def test_unknown_settings_name_the_choices(bad: object) -> None:
    with pytest.raises(ConfigError, match="cpu, cuda, cuda:<index> or auto"):
        resolve_device(bad, cuda_count=1)  # type: ignore[arg-type]


def test_torch_and_local_rank_are_read_when_not_given(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_cuda(monkeypatch, 0)
    assert resolve_device("auto") == "cpu"
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        resolve_device("cuda")
    fake_cuda(monkeypatch, 4)
    monkeypatch.setenv("LOCAL_RANK", "2")
    assert resolve_device("auto") == resolve_device("cuda") == "cuda:2"
    monkeypatch.delenv("LOCAL_RANK")
    assert resolve_device("cuda") == "cuda:0"


def test_null_follows_the_trainer_and_explicit_settings_override_it() -> None:
    assert [follow_trainer(a) for a in ("cpu", "gpu", "cuda", "auto")] == ["cpu", "cuda", "cuda", "auto"]
    with pytest.raises(ConfigError, match="trainer.accelerator, which is mps.*encode.device=cpu"):
        follow_trainer("mps")
    assert compose_specs([]).encode.device == "cpu"  # trainer=cpu, encode.device=null
    assert compose_specs(["trainer=gpu"]).encode.device == "cuda"
    assert compose_specs(["trainer.accelerator=auto"]).encode.device == "auto"
    assert compose_specs(["trainer=gpu", "encode.device=cpu"]).encode.device == "cpu"
    assert compose_specs(["encode=reference", "encode.device=cuda:1"]).encode.device == "cuda:1"
    with pytest.raises(ConfigError, match="encode.device=tpu is unknown"):
        compose_specs(["encode.device=tpu"])


def test_int8_weights_stay_on_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    from embedlab.tasks.model import run_device

    with pytest.raises(ConfigError, match="weights=int8 runs on the CPU only.*encode.device=cpu"):
        compose_specs(["weights=int8", "trainer=gpu"])
    fake_cuda(monkeypatch, 1)
    assert run_device(compose_specs(["weights=int8", "encode.device=auto"])) == "cpu"
    assert run_device(compose_specs(["weights=bf16", "encode.device=auto"])) == "cuda:0"


@pytest.mark.parametrize(
    ("device", "requested", "backend", "bf16", "expected"),
    [
        ("cpu", "bf16", "fast", None, "bf16"),  # the fast CPU path as configured
        ("cpu", "bf16-autocast", "fast", None, "bf16-autocast"),
        ("cpu", "fp32", "reference", None, "fp32"),
        ("cpu", "bf16", "reference", None, "fp32"),  # reference: float32 everywhere
        ("cuda:0", "bf16", "fast", True, "bf16-autocast"),
        ("cuda:0", "bf16-autocast", "fast", True, "bf16-autocast"),
        ("cuda:0", "bf16", "fast", False, "fp16-autocast"),  # pre-Ampere GPUs
        ("cuda:0", "fp32", "fast", False, "fp32"),
        ("cuda:1", "bf16", "reference", True, "fp32"),
    ],
)
def test_encode_precision(
    device: str, requested: str, backend: str, bf16: bool | None, expected: str
) -> None:
    assert encode_precision(device, requested, backend, bf16_supported=bf16) == expected


def test_encoder_reports_and_keys_the_precision_it_runs_in(monkeypatch: pytest.MonkeyPatch) -> None:
    """On CUDA the cache key names the autocast precision, so CPU bf16 entries are never reused there."""
    fake_cuda(monkeypatch, 1, bf16=False)
    fast = EncodeSettings(backend="fast")
    on_gpu = Encoder(SimpleNamespace(device=torch.device("cuda:0")), fast)  # type: ignore[arg-type]
    assert (on_gpu.precision, on_gpu.tag) == ("fp16-autocast", "fast-fp16-autocast")
    on_cpu = Encoder(SimpleNamespace(device=torch.device("cpu")), fast)  # type: ignore[arg-type]
    assert (on_cpu.precision, on_cpu.tag) == ("bf16", "fast-bf16")
    assert on_cpu.describe() == {
        "device": "cpu",
        "name": device_name("cpu"),
        "backend": "fast",
        "precision": "bf16",
    }


def test_device_names(monkeypatch: pytest.MonkeyPatch) -> None:
    asked = []
    monkeypatch.setattr(
        torch.cuda, "get_device_name", lambda d=None: asked.append(d) or "NVIDIA H100 80GB HBM3"
    )
    assert device_name("cuda:1") == "NVIDIA H100 80GB HBM3" and asked == [torch.device("cuda:1")]
    name = device_name("cpu")
    try:
        models = [ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")]
    except OSError:
        models = []
    assert name == (models[0] if models else platform.processor() or platform.machine() or "unknown CPU")


def test_trainer_device_is_what_lightning_resolved() -> None:
    import lightning as L

    trainer = L.Trainer(accelerator="cpu", devices=1, precision="bf16-mixed", logger=False)
    assert trainer_device(trainer) == {
        "accelerator": "cpu",
        "device": "cpu",
        "name": device_name("cpu"),
        "devices": 1,
        "precision": "bf16-mixed",
    }


def test_fp16_autocast_path_matches_fp32(tiny_model_dirs) -> None:
    """What a bf16 request runs in on a GPU without bf16, exercised on the CPU's autocast."""
    from sentence_transformers import SentenceTransformer

    from embedlab.encode.fast import fast_encode

    model = SentenceTransformer(str(tiny_model_dirs["bert"]), device="cpu")
    texts = ["a short text", "a somewhat longer text about the weather today", "tiny"]
    fp32, _ = fast_encode(model, texts, precision="fp32")
    fp16, _ = fast_encode(model, texts, precision="fp16-autocast")
    assert fp16.dtype == np.float32 and not np.array_equal(fp16, fp32)  # it really ran in half precision
    np.testing.assert_allclose(fp16, fp32, atol=2e-2)


def test_gpu_smoke_without_cuda_says_so_and_exits_2(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """benchmarks/gpu_smoke.py on a machine without CUDA: one message saying what to do, exit code 2."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_smoke.py"
    spec = importlib.util.spec_from_file_location("gpu_smoke", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert module.main([]) == 2
    assert "no CUDA GPU is visible" in capsys.readouterr().err
