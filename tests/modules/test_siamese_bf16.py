"""SiameseModule under bf16 mixed precision on CPU (``trainer.precision=bf16-mixed``): the encoder runs
under bf16 autocast, the loss stays float32 and a short fit trains."""

from __future__ import annotations

import math
from pathlib import Path

import lightning as L
import pytest
import torch

from embedlab.models.encoder import EncoderSpec, build_encoder
from embedlab.modules.siamese import SiameseModule

PAIRS = [
    ("A man is playing a guitar.", "A man plays the guitar loudly on a stage.", 0.9),
    ("The cat sleeps.", "Stocks fell sharply on Monday after the bank raised rates.", 0.0),
    ("A woman slices an onion.", "A woman is cutting an onion.", 1.0),
    ("Rain.", "Three children are running across a wide green field.", 0.1),
]


def batch() -> dict:
    s1, s2, labels = zip(*PAIRS, strict=True)
    return {"sentence1": list(s1), "sentence2": list(s2), "label": torch.tensor(labels)}


@pytest.fixture()
def module(tiny_model_dirs: dict[str, Path]) -> SiameseModule:
    encoder, _ = build_encoder(
        EncoderSpec(name="tiny", name_or_path=str(tiny_model_dirs["bert"]), max_seq_length=32)
    )
    module = SiameseModule(encoder, loss="cosine", lr=1e-3, warmup_ratio=0.0)
    module.log = lambda *args, **kwargs: None  # type: ignore[method-assign]  # no trainer attached
    return module.eval()  # no dropout: the two precisions see the same network


@pytest.mark.parametrize("loss", ["cosine", "mnrl"])
def test_loss_is_float32_and_close_under_bf16_autocast(module: SiameseModule, loss: str) -> None:
    if loss == "mnrl":
        module = SiameseModule(module.encoder, loss="mnrl").eval()
        module.log = lambda *args, **kwargs: None  # type: ignore[method-assign]
        data = {"anchor": batch()["sentence1"], "positive": batch()["sentence2"], "negatives": []}
    else:
        data = batch()
    reference = module.training_step(data, 0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = module.training_step(data, 0)
    mixed.backward()
    assert mixed.dtype == torch.float32 and math.isfinite(mixed.item())
    assert abs(float(mixed) - float(reference)) < 0.02 * abs(float(reference)) + 1e-3
    assert all(torch.isfinite(p.grad).all() for p in module.parameters() if p.grad is not None)


def test_bf16_mixed_fit_trains_on_cpu(module: SiameseModule) -> None:
    before = {n: p.detach().clone() for n, p in module.named_parameters()}
    del module.log  # the trainer logs
    module.train()
    trainer = L.Trainer(
        accelerator="cpu", precision="bf16-mixed", max_steps=3, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False,
    )  # fmt: skip
    trainer.fit(module, train_dataloaders=torch.utils.data.DataLoader([batch()] * 3, batch_size=None))
    assert math.isfinite(float(trainer.callback_metrics["train/loss"]))
    assert any(not torch.equal(before[n], p) for n, p in module.named_parameters())
