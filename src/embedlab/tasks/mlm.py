"""Continued masked-LM training of an encoder's backbone on a text corpus (domain adaptation).

Held-out perplexity (fixed masks), k-NN accuracy and t-SNE maps (labelled corpora) are measured
before and after; the trained backbone is copied back into the sentence encoder the runner saves.
Forgetting is watched by a general-quality probe, a guard and replay, and an optional fine-tune
step follows (tasks/mlm_probe.py).
"""

from __future__ import annotations

import copy
import logging
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from embedlab.data.text_corpus import general_sentences, load_corpus, mix_replay
from embedlab.encode.encoder import Encoder
from embedlab.errors import ConfigError
from embedlab.models.encoder import build_encoder
from embedlab.tasks.base import EvalOutput, Task, register
from embedlab.tasks.mlm_probe import (
    STAGE_TITLES,
    apply_guard,
    finetune_on_pairs,
    finetune_settings,
    general_probe_spec,
    guard_settings,
    knn_accuracy,
    probe_general,
)

log = logging.getLogger(__name__)


@register("mlm")
class MLMTask(Task):
    def __init__(self, specs) -> None:
        from embedlab.data.sts import load_sts

        super().__init__(specs)
        self.probe_cfg, self.guard_cfg, self.replay_cfg = guard_settings(specs.objective.extra)
        self.finetune = finetune_settings(specs)
        self.corpus = load_corpus(specs.data)
        self.batch = int(specs.data_cfg.get("eval_batch_size", 32))
        self.out, self.key = Path(specs.run.output_dir), f"val/{self.corpus.name}"
        self.metrics: dict[str, float] = {}
        self.plots: dict[str, str] = {}
        self.probe_data, self.previous, self.before, self.steps = None, None, {}, 0
        if self.probe_cfg is not None:
            mp = self.probe_cfg.get("max_pairs")
            spec = general_probe_spec(
                self.probe_root, max_pairs=None if mp is None else int(mp), seed=specs.run.seed
            )
            self.probe_data = load_sts(spec, splits=("validation", "test"))

    @property
    def probe_root(self) -> str | None:
        return self.probe_cfg.get("root") if self.probe_cfg is not None else None

    @classmethod
    def check(cls, specs) -> None:
        super().check(specs)
        if not specs.run.fit:
            raise ConfigError(
                f"data={specs.data_name} is an MLM corpus: continued MLM trains, run it with train.py."
            )
        guard_settings(specs.objective.extra)
        finetune_settings(specs)

    def build_model(self) -> tuple[Any, Any]:
        model, self.resolved = build_encoder(replace(self.specs.model, projection_dim=None))
        return model, self.resolved

    def build_datamodule(self, model: Any) -> Any:
        from embedlab.data.mlm_datamodule import MLMDataModule
        from embedlab.modules.mlm import MLMModule

        s, o = self.specs, self.specs.objective
        optim = {"lr": o.lr, "weight_decay": o.weight_decay, "warmup_ratio": o.warmup_ratio}
        self.module = MLMModule(self.resolved.path, **optim, dataset_name=self.corpus.name)
        self.datamodule = MLMDataModule(
            self.module.tokenizer,
            self.train_texts_with_replay(),
            self.corpus.heldout_texts,
            max_length=s.model.max_seq_length,
            batch_size=int(s.data_cfg["batch_size"]),
            eval_batch_size=self.batch,
            **self.masking,
            seed=s.run.seed,
        )
        self.datamodule.setup()
        return self.datamodule

    def build_module(self, model: Any) -> Any:
        return self.module

    @property
    def masking(self) -> dict[str, Any]:
        o = self.specs.objective.extra
        return {"mlm_probability": float(o["mlm_probability"]), "whole_word_mask": bool(o["whole_word_mask"])}

    def train_texts_with_replay(self) -> list[str]:
        texts, self.replay_meta = list(self.corpus.train_texts), None
        if self.replay_cfg is not None:
            general, where = general_sentences(self.replay_cfg["source"], stsb_root=self.probe_root)
            fraction = float(self.replay_cfg["fraction"])
            mix = mix_replay(texts, general, fraction, seed=self.specs.run.seed, source=where)
            texts = list(mix.texts)
            self.replay_meta = {"source": where, "fraction": mix.fraction, "n_domain": mix.n_domain}
            self.replay_meta["n_replay"] = mix.n_replay
        return texts

    def perplexity(self) -> float:
        """Held-out perplexity with the same (seeded) masks before and after training."""
        from embedlab.modules.mlm import perplexity

        s = self.specs
        return perplexity(
            self.module.model,
            self.module.tokenizer,
            self.corpus.heldout_texts,
            **self.masking,
            seed=s.run.seed,
            batch_size=self.batch,
            max_length=s.model.max_seq_length,
        )

    def before_fit(self, model: Any, module: Any, loggers: list[Any]) -> None:
        self.metrics[f"{self.key}/perplexity_before"] = self.perplexity()
        model.eval()
        self.embed_and_plot(model, "before", loggers)
        if self.probe_data is not None:
            self.before = probe_general(model, self.probe_data, settings=self.specs.encode.settings)
            self.metrics.update({f"{k}_before": v for k, v in self.before.items()})
            # the guard may have to put the pre-update encoder back: keep a copy of its weights
            self.previous = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def after_fit(self, module: Any, trainer: Any) -> None:
        self.steps = int(trainer.global_step)

    def embed_and_plot(self, encoder: Any, stage: str, loggers: list[Any]) -> None:
        """Held-out embeddings -> k-NN accuracy and a t-SNE PNG, for labelled corpora."""
        from embedlab.viz.tsne import log_image_to_loggers, tsne_plot

        corpus, seed, labels = self.corpus, self.specs.run.seed, self.corpus.heldout_labels
        if labels is None:
            return
        emb = encoder.encode(
            corpus.heldout_texts, batch_size=self.batch, convert_to_numpy=True, show_progress_bar=False
        )  # (N, D)
        self.metrics[f"val/{corpus.name}/knn_accuracy_{stage}"] = knn_accuracy(emb, labels, seed=seed)
        title = f"{corpus.name}: held-out embeddings, {STAGE_TITLES.get(stage, stage)} ({len(labels)} texts)"
        path = tsne_plot(emb, labels, self.out / "plots" / f"tsne_{stage}.png", title=title, seed=seed)
        log_image_to_loggers(loggers, f"val/{corpus.name}/tsne_{stage}", path)
        self.plots[stage] = str(path)

    def evaluate(self, encoder: Encoder, loggers: list[Any]) -> EvalOutput:
        import torch

        from embedlab.modules.mlm import copy_backbone_to_encoder

        model, m = encoder.model, self.metrics
        m[f"{self.key}/perplexity_after"] = self.perplexity()
        copied = copy_backbone_to_encoder(self.module.model, model)
        model.to(torch.device("cpu"))
        model.eval()
        self.embed_and_plot(model, "after", loggers)
        guard_meta, finetune_meta = self.guard(model), None
        if self.finetune is not None:
            finetune_meta = self.finetune_stage(
                model, bool(guard_meta and guard_meta["guard_triggered"]), loggers
            )
            if guard_meta is not None:
                guard_meta["saved"] += ", then fine-tuned"
        self.count_texts()
        report, probe = self.module.head_report, self.probe_data
        mlm = {
            "head_newly_initialised": list(report.new_head_keys),
            "missing_backbone_keys": list(report.missing_backbone_keys),
            "backbone_tensors_copied": copied.n_tensors,
            "steps": self.steps,
        }
        general = None
        if probe is not None:
            pairs = {k: len(v) for k, v in probe.splits.items()}
            general = {"name": probe.name, "fingerprint": probe.fingerprint(), "pairs": pairs}
        extra = {"mlm": mlm, "plots": self.plots, "guard": guard_meta, "replay": self.replay_meta}
        extra |= {"finetune": finetune_meta, "general_probe": general}
        new_head = " (the MLM head started at random)" if report.head_is_new else ""
        log.info(
            f"Perplexity on {len(self.corpus.heldout_idx)} held-out texts: {m[f'{self.key}/perplexity_before']:.2f}"
            f" before, {m[f'{self.key}/perplexity_after']:.2f} after {self.steps} steps{new_head}"
        )
        return EvalOutput(m, data_meta=self.corpus.meta(), extra_meta=extra)

    def guard(self, model: Any) -> dict[str, Any] | None:
        """The probe after the update and, with a guard, its decision (None: no guard)."""
        if self.probe_data is None:
            return None
        after = probe_general(model, self.probe_data, settings=self.specs.encode.settings)
        self.metrics.update({f"{k}_after": v for k, v in after.items()})
        name = self.probe_data.name
        val, test = (f"{split}/{name}/spearman_cosine" for split in ("val", "test"))
        log.info(
            f"General quality ({name} cosine Spearman): validation {self.before[val]:.4f} -> {after[val]:.4f}, "
            f"test {self.before[test]:.4f} -> {after[test]:.4f}"
        )
        if self.guard_cfg is None:
            return None
        assert self.previous is not None
        decision = apply_guard(
            self.guard_cfg, self.before, after, name, model, self.previous, self.out / "model"
        )
        self.metrics[f"val/{name}/guard_triggered"] = float(decision.triggered)
        return {
            **decision.as_dict(),
            "saved": "previous encoder" if decision.triggered else "updated encoder",
        }

    def finetune_stage(self, model: Any, kept_previous: bool, loggers: list[Any]) -> dict[str, Any]:
        """Fine-tune the kept encoder (and, to compare, the pre-update one); probe both. Keys:
        ``<probe key>_after_finetune`` (the kept encoder), ``..._finetuned_without_mlm`` (the baseline)."""
        assert self.probe_data is not None and self.previous is not None and self.finetune is not None
        settings, probe = self.finetune, self.probe_data
        spec = general_probe_spec(self.probe_root, max_pairs=settings.max_pairs, seed=self.specs.run.seed)
        record: dict[str, Any] = {**asdict(settings), "pairs_from": spec.name}
        stages = [("after_finetune", model, "MLM-updated" if not kept_previous else "kept (pre-update)")]
        if settings.compare_without_mlm and kept_previous:
            log.info(
                "The guard kept the pre-update encoder: fine-tuning it IS the without-MLM baseline; run once."
            )
            record["without_mlm"] = "same as with_mlm: the guard rejected the MLM update"
        elif settings.compare_without_mlm:
            baseline = copy.deepcopy(model)
            baseline.load_state_dict(self.previous)
            stages.append(("finetuned_without_mlm", baseline, "pre-update"))
        for stage, encoder, label in stages:
            step = finetune_on_pairs(encoder, spec, settings, self.specs, label=label)
            step["encoder"] = label  # "with_mlm" holds the encoder the guard kept: pre-update if it rejected
            record["with_mlm" if stage == "after_finetune" else "without_mlm"] = step
            self.embed_and_plot(encoder, stage, loggers)
            general = probe_general(encoder, probe, settings=self.specs.encode.settings)
            self.metrics.update({f"{k}_{stage}": v for k, v in general.items()})
            val, test = (general[f"{split}/{probe.name}/spearman_cosine"] for split in ("val", "test"))
            log.info(
                f"Fine-tuned {label} encoder: val/{probe.name}/spearman_cosine {val:.4f}, test {test:.4f}"
            )
        return record

    def objects(self) -> dict[str, Any]:
        return {"corpus": self.corpus, "plots": self.plots}

    def count_texts(self) -> None:
        m, dm, key = self.metrics, self.datamodule, self.key
        if self.replay_meta is not None:
            m[f"{key}/n_replay_texts"] = float(self.replay_meta["n_replay"])
        assert dm.train_tokens is not None and dm.val_tokens is not None
        m[f"{key}/n_train_texts"] = float(len(self.corpus.train_idx))
        m[f"{key}/n_heldout_texts"] = float(len(self.corpus.heldout_idx))
        m[f"{key}/n_truncated_train_texts"] = float(dm.train_tokens.n_truncated)
        m[f"{key}/n_truncated_heldout_texts"] = float(dm.val_tokens.n_truncated)
