"""SiameseModule's optimizer: fused AdamW where torch has the kernel (CPU here), SBERT's
weight-decay groups, and the same update as torch's reference (for-loop) AdamW."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch

from embedlab.models.encoder import EncoderSpec, build_encoder
from embedlab.modules.siamese import SiameseModule


@pytest.fixture()
def module(tiny_model_dirs: dict[str, Path]) -> SiameseModule:
    encoder, _ = build_encoder(
        EncoderSpec(name="tiny", name_or_path=str(tiny_model_dirs["bert"]), max_seq_length=32)
    )
    module = SiameseModule(encoder, loss="cosine", lr=1e-3, weight_decay=0.01, warmup_ratio=0.0)
    # max_epochs=-1 with max_steps: the schedule length is known without a dataloader
    module.trainer = L.Trainer(
        accelerator="cpu", max_epochs=-1, max_steps=10, logger=False, enable_checkpointing=False
    )
    return module


def test_optimizer_is_fused_adamw_with_sbert_decay_groups(module: SiameseModule) -> None:
    opt = module.configure_optimizers()["optimizer"]
    assert isinstance(opt, torch.optim.AdamW)
    assert all(g["fused"] for g in opt.param_groups)  # torch 2.13 has a CPU kernel
    decay, no_decay = opt.param_groups
    names = {id(p): n for n, p in module.named_parameters()}
    assert decay["weight_decay"] == 0.01 and no_decay["weight_decay"] == 0.0
    assert all(names[id(p)].endswith("bias") or "LayerNorm" in names[id(p)] for p in no_decay["params"])
    assert not any(names[id(p)].endswith("bias") for p in decay["params"])
    n_trainable = sum(p.requires_grad for p in module.parameters())
    assert len(decay["params"]) + len(no_decay["params"]) == n_trainable


def test_fused_update_equals_torch_reference_adamw(module: SiameseModule) -> None:
    opt = module.configure_optimizers()["optimizer"]
    params = [p for g in opt.param_groups for p in g["params"]]
    start = [p.detach().clone() for p in params]
    copies = [[p.detach().clone().requires_grad_(True) for p in g["params"]] for g in opt.param_groups]
    reference = torch.optim.AdamW(
        [
            {"params": c, "weight_decay": g["weight_decay"]}
            for c, g in zip(copies, opt.param_groups, strict=True)
        ],
        lr=opt.param_groups[0]["lr"],
        foreach=False,  # the plain per-tensor loop: torch's reference implementation
    )
    gen = torch.Generator().manual_seed(0)
    flat_copies = [c for group in copies for c in group]
    for _ in range(3):
        for p, c in zip(params, flat_copies, strict=True):
            grad = torch.randn(p.shape, generator=gen)
            p.grad, c.grad = grad.clone(), grad.clone()
        opt.step()
        reference.step()
    moved = max(float((p.detach() - s).abs().max()) for p, s in zip(params, start, strict=True))
    assert moved > 1e-3  # three steps at lr 1e-3 really changed the weights
    diff = max(float((p.detach() - c.detach()).abs().max()) for p, c in zip(params, flat_copies, strict=True))
    assert diff < 1e-6
