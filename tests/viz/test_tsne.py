"""t-SNE plots: a PNG for clustered points, clear handling of too few points, W&B logging."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from embedlab.viz.tsne import log_image_to_loggers, tsne_plot


def clusters(n_per: int = 20, dim: int = 64) -> tuple[np.ndarray, list[str]]:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, dim)) * 5
    x = np.concatenate([c + rng.normal(size=(n_per, dim)) for c in centres])
    return x, [name for name in ("a", "b", "c") for _ in range(n_per)]


def test_png_for_three_clusters(tmp_path: Path) -> None:
    x, labels = clusters()
    out = tsne_plot(x, labels, tmp_path / "sub" / "tsne.png", title="three clusters", perplexity=15)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_too_few_points_for_the_perplexity_lowers_it_and_logs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    x, labels = clusters(n_per=4)
    with caplog.at_level(logging.WARNING, logger="embedlab.viz.tsne"):
        out = tsne_plot(x, labels, tmp_path / "small.png", title="small", perplexity=30)
    assert out.exists() and "lowered" in caplog.text


@pytest.mark.parametrize(
    ("n", "labels", "message"),
    [(3, None, "at least"), (12, ["a"] * 5, "labels for"), (12, None, "perplexity must be")],
)
def test_bad_input(tmp_path: Path, n: int, labels, message: str) -> None:
    x = np.random.default_rng(0).normal(size=(n, 8))
    with pytest.raises(ValueError, match=message):
        tsne_plot(x, labels, tmp_path / "x.png", title="bad", perplexity=0 if "perplexity" in message else 30)


def test_image_goes_to_wandb_loggers_only(tmp_path: Path) -> None:
    from lightning.pytorch.loggers import CSVLogger, WandbLogger

    class FakeWandb(WandbLogger):
        def __init__(self) -> None:  # no run is started
            self.calls: list[tuple[str, list]] = []

        def log_image(self, key: str, images: list, **kwargs) -> None:
            self.calls.append((key, images))

    wandb_logger = FakeWandb()
    sent = log_image_to_loggers([CSVLogger(str(tmp_path)), wandb_logger], "val/x/tsne", tmp_path / "p.png")
    assert sent == 1 and wandb_logger.calls == [("val/x/tsne", [str(tmp_path / "p.png")])]
