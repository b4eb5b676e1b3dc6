"""Continued masked-LM training: steps run, perplexity is reproducible, the fresh MLM head
is reported, and the trained backbone goes back into the sentence encoder."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import lightning as L
import pytest
import torch

from embedlab.data.datamodules import MLMDataModule
from embedlab.data.mlm import MLMCollator, tokenize_texts, word_offsets
from embedlab.data.text_corpus import CorpusSpec, TextCorpus, load_corpus
from embedlab.models.encoder import EncoderSpec, build_encoder
from embedlab.modules.mlm import MLMModule, copy_backbone_to_encoder, load_mlm_model, perplexity

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def corpus() -> TextCorpus:
    return load_corpus(CorpusSpec(name="lee", max_texts=48, val_fraction=0.25))


def trainer(**kw) -> L.Trainer:
    return L.Trainer(
        accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0, **kw,
    )  # fmt: skip


@pytest.mark.parametrize("arch", ["bert", "roberta"])
def test_mlm_steps_lower_heldout_perplexity(
    tiny_model_dirs: dict[str, Path], corpus: TextCorpus, arch: str
) -> None:
    L.seed_everything(0)
    module = MLMModule(tiny_model_dirs[arch], lr=1e-3, warmup_ratio=0.0, dataset_name="lee")
    dm = MLMDataModule(module.tokenizer, corpus.train_texts, corpus.heldout_texts, max_length=48,
                       batch_size=6, seed=0)  # fmt: skip
    before = perplexity(module.model, module.tokenizer, corpus.heldout_texts, seed=0, max_length=48)
    fit = trainer(max_epochs=1)
    fit.fit(module, datamodule=dm)
    after = perplexity(module.model, module.tokenizer, corpus.heldout_texts, seed=0, max_length=48)
    assert fit.global_step == 6
    assert math.isfinite(float(fit.callback_metrics["train/mlm_loss"]))
    assert after < before
    # validation batches are masked with the datamodule's seed: the same number as perplexity()
    assert float(fit.callback_metrics["val/lee/perplexity"]) == pytest.approx(after, rel=1e-4)


def test_perplexity_is_deterministic_for_a_seed(tiny_model_dirs: dict[str, Path], corpus: TextCorpus) -> None:
    model, tok, _ = load_mlm_model(tiny_model_dirs["bert"])
    kw = dict(mlm_probability=0.15, batch_size=4, max_length=48)
    a = perplexity(model, tok, corpus.heldout_texts, seed=3, **kw)
    b = perplexity(model, tok, corpus.heldout_texts, seed=3, **kw)
    c = perplexity(model, tok, corpus.heldout_texts, seed=4, **kw)
    assert a == b and math.isfinite(a) and a > 1
    assert c != a
    w = perplexity(model, tok, corpus.heldout_texts, seed=3, whole_word_mask=True, **kw)
    assert w == perplexity(model, tok, corpus.heldout_texts, seed=3, whole_word_mask=True, **kw)


def test_fresh_head_is_detected_and_logged(
    tiny_model_dirs: dict[str, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="embedlab.modules.mlm"):
        model, tok, report = load_mlm_model(tiny_model_dirs["bert"])  # AutoModel weights: no head
    assert report.head_is_new and not report.missing_backbone_keys
    assert all(k.startswith("cls.") for k in report.new_head_keys)
    assert "MLM head newly initialised" in caplog.text
    model.save_pretrained(tmp_path)  # now a checkpoint with its head
    tok.save_pretrained(tmp_path)
    _, _, reloaded = load_mlm_model(tmp_path)
    assert not reloaded.head_is_new


def test_backbone_copy_changes_encoder_and_keys_align(
    tiny_model_dirs: dict[str, Path], corpus: TextCorpus
) -> None:
    path = tiny_model_dirs["bert"]
    encoder, _ = build_encoder(EncoderSpec(name="tiny", name_or_path=str(path), max_seq_length=48))
    before = encoder.encode(corpus.heldout_texts[:4], convert_to_tensor=True)
    module = MLMModule(path, lr=1e-3, warmup_ratio=0.0)
    dm = MLMDataModule(module.tokenizer, corpus.train_texts, [], max_length=48, batch_size=8, seed=0)
    trainer(max_steps=3, limit_val_batches=0).fit(module, datamodule=dm)
    backbone = module.model.base_model.state_dict()
    encoder_keys = set(encoder[0].auto_model.state_dict())
    pooler = {k for k in encoder_keys if k.startswith("pooler.")}  # the encoder keeps its frozen pooler
    assert set(backbone) == encoder_keys - pooler
    copy = copy_backbone_to_encoder(module.model, encoder)
    assert copy.n_tensors == len(backbone) and set(copy.skipped_encoder_keys) == pooler
    copied = encoder[0].auto_model.state_dict()
    for name, tensor in backbone.items():
        assert torch.equal(copied[name], tensor), name
    after = encoder.encode(corpus.heldout_texts[:4], convert_to_tensor=True)
    assert not torch.allclose(before, after)


def test_backbone_copy_refuses_another_architecture(tiny_model_dirs: dict[str, Path]) -> None:
    model, _, _ = load_mlm_model(tiny_model_dirs["bert"])
    encoder, _ = build_encoder(
        EncoderSpec(name="r", name_or_path=str(tiny_model_dirs["roberta"]), max_seq_length=48)
    )
    with pytest.raises((ValueError, RuntimeError)):
        copy_backbone_to_encoder(model, encoder)


def test_whole_word_masking_masks_every_piece_of_a_word(tiny_model_dirs: dict[str, Path]) -> None:
    assert word_offsets([None, 0, 0, 1, None]) == [(0, 0), (1, 2), (2, 3), (4, 5), (0, 0)]
    _, tok, _ = load_mlm_model(tiny_model_dirs["bert"])
    texts = ["unbelievably extraordinary circumstances surrounded the parliamentary investigation"] * 8
    tokens = tokenize_texts(tok, texts, max_length=48, whole_word_mask=True)
    batch = MLMCollator(tok, mlm_probability=0.4, whole_word_mask=True, seed=0)(tokens.features)
    masked = batch["labels"] != -100  # (B, T)
    assert masked.any()
    word_ids = tok(texts[0]).word_ids()
    for row in masked:
        for word in {w for w in word_ids if w is not None}:
            pieces = [row[i].item() for i, w in enumerate(word_ids) if w == word]
            assert all(pieces) or not any(pieces)


def test_truncation_is_counted_and_logged(tiny_model_dirs: dict[str, Path], corpus: TextCorpus,
                                          caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    _, tok, _ = load_mlm_model(tiny_model_dirs["bert"])
    with caplog.at_level(logging.WARNING, logger="embedlab.data.mlm"):
        tokens = tokenize_texts(tok, ["short text", corpus.texts[0]], max_length=16)
    assert tokens.n_truncated == 1 and tokens.max_tokens > 16
    assert all(len(f["input_ids"]) <= 16 for f in tokens.features)
    assert "truncated" in caplog.text


def test_run_mlm_on_tiny_model(make_cfg, tmp_path: Path, corpus: TextCorpus) -> None:
    from omegaconf import OmegaConf, open_dict

    from embedlab.jobs import train as run_mlm

    table = tmp_path / "labelled.csv"
    rows = [f'"{t.replace(chr(34), "")}",{"abc"[i % 3]}' for i, t in enumerate(corpus.texts)]
    table.write_text("text,topic\n" + "\n".join(rows) + "\n", encoding="utf-8")
    cfg = make_cfg("model=tiny_bert", "logger=none", "callbacks=none", "+trainer.max_steps=2",
                   output_dir=tmp_path / "run")  # fmt: skip
    with open_dict(cfg):
        cfg.objective = OmegaConf.create(dict(name="mlm", loss="mlm", mlm_probability=0.15, whole_word_mask=False, lr=1e-3,
                                              weight_decay=0.01, warmup_ratio=0.0))  # fmt: skip
        cfg.data = OmegaConf.create(dict(task="mlm", metric="perplexity", name="toy", format="table", root=None, file=str(table), text_column="text",
                                         label_column="topic", val_fraction=0.5, batch_size=8, max_texts=None))  # fmt: skip
    metrics, objects = run_mlm(cfg)
    assert math.isfinite(metrics["val/toy/perplexity_before"]) and math.isfinite(
        metrics["val/toy/perplexity_after"]
    )
    assert 0.0 <= metrics["val/toy/knn_accuracy_after"] <= 1.0
    assert (tmp_path / "run" / "model" / "modules.json").exists()
    assert (tmp_path / "run" / "results.json").exists()
    assert set(objects["plots"]) == {"before", "after"}
    from sentence_transformers import SentenceTransformer

    reloaded = SentenceTransformer(str(tmp_path / "run" / "model"), device="cpu")
    assert torch.allclose(
        reloaded.encode(["a test"], convert_to_tensor=True),
        objects["encoder"].encode(["a test"], convert_to_tensor=True),
        atol=1e-5,
    )


def _tensors(batches) -> list[tuple[list, list]]:
    return [(b["input_ids"].tolist(), b["labels"].tolist()) for b in batches]


@pytest.mark.parametrize("whole_word_mask", [False, True])
def test_training_batches_resume_mid_epoch_with_the_same_masks(
    tiny_model_dirs: dict[str, Path], corpus: TextCorpus, whole_word_mask: bool
) -> None:
    """The loader's state (position + masking generator) lets a resumed run draw exactly the
    batches and masks the killed run would have drawn; the order and masks also equal the
    seeded shuffle=True DataLoader that recorded runs used."""
    from torch.utils.data import DataLoader

    _, tok, _ = load_mlm_model(tiny_model_dirs["bert"])

    def datamodule() -> MLMDataModule:
        dm = MLMDataModule(tok, corpus.train_texts, [], max_length=48, batch_size=5, seed=3,
                           whole_word_mask=whole_word_mask)  # fmt: skip
        dm.setup()
        return dm

    dm = datamodule()
    straight = dm.train_dataloader()
    epochs = []
    for epoch in range(2):
        straight.batch_sampler.set_epoch(epoch)
        epochs.append(_tensors(straight))
    old_style = DataLoader(
        list(dm.train_tokens.features), batch_size=5, shuffle=True,
        generator=torch.Generator().manual_seed(3),
        collate_fn=MLMCollator(tok, seed=3, whole_word_mask=whole_word_mask),
    )  # fmt: skip
    assert [_tensors(old_style) for _ in range(2)] == epochs

    killed = datamodule().train_dataloader()
    killed.batch_sampler.set_epoch(0)
    _ = _tensors(killed)  # epoch 0 complete
    killed.batch_sampler.set_epoch(1)
    it = iter(killed)
    seen = [next(it) for _ in range(3)]
    state = killed.state_dict()  # what the mid-epoch checkpoint holds
    assert state["batches_done"] == 3 and "mask_rng" in state["collate"]

    resumed = datamodule().train_dataloader()  # a new process: fresh generator, fresh sampler
    resumed.load_state_dict(state)
    resumed.batch_sampler.set_epoch(1)
    assert _tensors(seen) + _tensors(resumed) == epochs[1]
