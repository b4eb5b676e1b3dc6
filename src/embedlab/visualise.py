"""t-SNE map of any run: ``python -m embedlab.visualise <run output dir>``. An entry point (it reads
the run's saved config): embeds the run's evaluation texts with its saved model, corpus texts coloured
by label, STS sentences by gold-score bin; PNG to ``<run>/plots/`` and a W&B run."""

from __future__ import annotations

import argparse
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from embedlab.config import load_run_specs
from embedlab.config.axes import RunSpecs
from embedlab.data.sts import load_sts
from embedlab.data.text_corpus import load_corpus
from embedlab.encode.encoder import Encoder, EncodeSettings
from embedlab.errors import ConfigError, DataError
from embedlab.models.encoder import build_encoder
from embedlab.viz.tsne import log_image_to_loggers, tsne_plot

log = logging.getLogger("embedlab.visualise")


@dataclass(frozen=True)
class LabelledTexts:
    texts: list[str]
    labels: list[str] | None
    what: str  # for the plot title, e.g. "medical held-out abstracts"


def score_bins(scores: Sequence[float], score_range: Sequence[float], n_bins: int = 5) -> list[str]:
    """Label each score with its equal-width bin of ``score_range``, e.g. "[2, 3)"; the top bin is closed."""
    lo, hi = float(score_range[0]), float(score_range[1])
    if n_bins < 1 or not lo < hi:
        raise ValueError(f"need n_bins >= 1 and a score range low < high, got {n_bins} and {score_range}.")
    width = (hi - lo) / n_bins
    edges = [lo + i * width for i in range(n_bins + 1)]
    names = [f"[{edges[i]:g}, {edges[i + 1]:g}{']' if i == n_bins - 1 else ')'}" for i in range(n_bins)]
    return [names[min(max(int((s - lo) // width), 0), n_bins - 1)] for s in scores]


def evaluation_texts(specs: RunSpecs, *, split: str | None = None, n_bins: int = 5) -> LabelledTexts:
    """The texts a run evaluated on, with the labels that colour them."""
    task, name = specs.task, specs.data_name
    if task == "mlm":
        corpus = load_corpus(specs.data)
        n = len(corpus.heldout_idx)
        return LabelledTexts(corpus.heldout_texts, corpus.heldout_labels, f"{n} {corpus.name} held-out texts")
    if task == "sts":
        split = split or str(specs.run.eval_splits[-1])
        pairs = load_sts(specs.data, splits=(split,)).splits[split]
        bins = score_bins(pairs.scores, pairs.score_range, n_bins)
        first: dict[str, str] = {}  # a sentence in several pairs keeps its first pair's bin
        for a, b, label in zip(pairs.sentence1, pairs.sentence2, bins, strict=True):
            first.setdefault(a, label)
            first.setdefault(b, label)
        what = f"{len(first)} {name} {split} sentences by gold-score bin"
        return LabelledTexts(list(first), list(first.values()), what)
    raise ConfigError(
        f"The run used data={name} (task {task}); a t-SNE map needs labelled texts: corpus runs "
        f"(data=medical, mlm_lee) or STS runs (data=stsb, lee, sts_file)."
    )


def run_model(specs: RunSpecs, run_dir: Path) -> tuple[Any, str]:
    """The model the run saved, else the one its config names; returns (model, where from)."""
    saved = run_dir / "model"
    if (saved / "modules.json").is_file():
        from sentence_transformers import SentenceTransformer

        return SentenceTransformer(str(saved), device="cpu"), str(saved)
    log.info("%s holds no saved model: using the config's model %s.", run_dir, specs.model.name)
    if specs.model_kind != "transformer":
        raise ConfigError(
            f"{run_dir} holds no saved model and model={specs.model.name} is built by the task layer: "
            f"re-run it with save_model=true to plot it."
        )
    model, resolved = build_encoder(
        replace(specs.model, projection_dim=None) if specs.task == "mlm" else specs.model
    )
    return model, f"model={specs.model.name} ({resolved.source})"


def visualise_run(
    run_dir: str | Path,
    *,
    split: str | None = None,
    max_points: int | None = 1000,
    n_bins: int = 5,
    data_dir: str | None = None,
    wandb_mode: str = "auto",
    out: str | Path | None = None,
    seed: int = 0,
) -> Path:
    """Embed a run's evaluation texts with its model, plot t-SNE, log to W&B; returns the PNG."""
    run = Path(run_dir).expanduser().resolve()
    if not run.is_dir():
        raise ConfigError(f"Run folder {run} does not exist.")
    specs = load_run_specs(run, data_dir)
    try:
        texts = evaluation_texts(specs, split=split, n_bins=n_bins)
    except DataError as exc:
        raise DataError(
            f"{exc}\n(The run's data could not be read: pass --data-dir to point at it.)"
        ) from None
    if max_points is not None and len(texts.texts) > max_points:  # a seeded subsample
        keep = sorted(random.Random(seed).sample(range(len(texts.texts)), max_points))
        labels = None if texts.labels is None else [texts.labels[i] for i in keep]
        texts = LabelledTexts([texts.texts[i] for i in keep], labels, f"{texts.what}, {max_points} sampled")
    if texts.labels is None:
        log.warning("The run's texts carry no labels: the map is drawn in one colour.")
    model, source = run_model(specs, run)
    model.eval()
    settings = EncodeSettings(batch_size=int(specs.data_cfg.get("eval_batch_size", 32)))
    emb, stats = Encoder(model, settings).encode(texts.texts, what="texts")
    name = "saved_model" if source.endswith("model") else str(specs.model.name)
    path = Path(out) if out else run / "plots" / f"tsne_{split or 'eval'}_{name}.png"
    path = tsne_plot(emb, texts.labels, path, title=f"{run.name}: {texts.what}, {name}", seed=seed)
    log.info(f"Embedded {len(texts.texts)} texts with {source} ({stats.n_truncated} truncated); wrote {path}")
    if wandb_mode != "disabled":
        from embedlab.tracking.wandb_logger import finish_wandb, make_wandb_logger

        logger = make_wandb_logger(
            save_dir=str(run), name=f"viz:{run.name}", job_type="viz", mode=wandb_mode, tags=["viz"]
        )  # type: ignore[arg-type]
        exit_code = 1
        try:
            info = {"run_dir": str(run), "model": source, "n_points": len(texts.texts)}
            logger.experiment.config.update(info)
            log_image_to_loggers([logger], f"viz/{specs.data_name}/tsne", path)
            exit_code = 0
        finally:
            finish_wandb([logger], exit_code)
        log.info("Logged the plot to W&B (%s run in %s/wandb).", logger.experiment.settings.mode, run)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m embedlab.visualise",
        description="t-SNE map of a run's evaluation texts, embedded with the run's model, coloured by label.",
    )
    add = parser.add_argument  # the flags are named as visualise_run's parameters
    add("run_dir", help="a run output folder (outputs/<task>/runs/<date>/<time>)")
    add("--split", default=None, help="STS runs: the split to plot (default: the last eval split)")
    add("--max-points", type=int, default=1000, help="seeded subsample size (default 1000)")
    add("--bins", dest="n_bins", metavar="BINS", type=int, default=5, help="STS runs: gold-score bins")
    add("--data-dir", default=None, help="where the run's data lives now (paths.data_dir)")
    add("--wandb", dest="wandb_mode", default="auto", choices=["auto", "online", "offline", "disabled"])
    add("--out", default=None, help="PNG path (default: <run>/plots/tsne_<split>_<model>.png)")
    add("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")
    try:
        path = visualise_run(**vars(args))
    except (ConfigError, DataError) as exc:
        log.error("%s", exc)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
