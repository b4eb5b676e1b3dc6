"""Every value of every config group composes, and every one that changes a run runs
end to end with a tiny model and fast_dev_run."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from conftest import CONFIGS

GROUPS = [
    "model",
    "pooling",
    "dimension",
    "weights",
    "quantization",
    "index",
    "fusion",
    "bm25",
    "objective",
    "data",
    "trainer",
    "logger",
    "callbacks",
    "debug",
    "experiment",
]


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIGS / group).glob("*.yaml"))


ALL = [(g, o) for g in GROUPS for o in options(g)]


@pytest.mark.parametrize(("group", "option"), ALL, ids=[f"{g}={o}" for g, o in ALL])
@pytest.mark.parametrize("task", ["train", "evaluate"])
def test_every_option_composes(make_cfg, group: str, option: str, task: str) -> None:
    overrides = [f"{group}={option}"]
    if group == "data" and option == "sts_file":
        overrides += ["data.files.all=pairs.csv", "data.score_range=[0,5]"]
    if group == "model" and option == "saved":
        overrides += ["model.name_or_path=somewhere"]
    if group == "data" and option == "beir":
        overrides += ["data.name=mine", "data.root=somewhere"]
    if group == "data" and option == "qa_pairs":
        overrides += ["data.file=qa.csv"]
    cfg = make_cfg(*overrides, task=task)
    assert cfg.monitor.endswith(f"/{cfg.data.metric}")
    from embedlab.config import build_specs

    specs = build_specs(cfg, check=False)  # every axis maps onto its spec
    assert specs.model.name == cfg.model.name
    if cfg.data.task == "sts":
        assert specs.data.name == cfg.data.name
    assert (specs.index.spec is None) == (not cfg.get("index") or not cfg.index.get("kind"))
    assert (specs.fusion is None) == (cfg.fusion.name == "none") and specs.bm25.k1 == cfg.bm25.k1


def test_monitor_is_named_once() -> None:
    """`monitor:` is defined only in train.yaml / evaluate.yaml; everything else interpolates it."""
    defined = [
        p
        for p in CONFIGS.rglob("*.yaml")
        if any(line.startswith("monitor:") for line in p.read_text().splitlines())
    ]
    assert sorted(p.name for p in defined) == ["evaluate.yaml", "train.yaml"]
    for path in CONFIGS.rglob("*.yaml"):
        for line in path.read_text().splitlines():
            if line.strip().startswith("monitor:") and not line.startswith("monitor:"):
                assert "${monitor}" in line, f"{path}: {line}"


def test_unknown_option_is_a_clear_error(make_cfg) -> None:
    from hydra.errors import MissingConfigException

    with pytest.raises(MissingConfigException, match="pooling"):
        make_cfg("pooling=median")


SMOKE = [
    *[("model=" + m,) for m in options("model") if m.startswith("tiny_")],
    *[("model=tiny_bert", "pooling=" + p) for p in options("pooling")],
    # tiny models have 32 dims; PCA needs more distinct texts than lee's 50 (tests/test_pca.py runs it)
    *[("model=minilm", "dimension=" + d) for d in options("dimension") if not d.startswith("pca")],
    *[("model=tiny_bert", "objective=" + o) for o in options("objective") if o in {"cosine", "cosent"}],
    # mnrl objectives train on retrieval data (tests/eval/test_retrieval_run.py), mlm on a corpus (below)
    *[("model=tiny_bert", "logger=" + lg) for lg in options("logger")],
]


@pytest.mark.parametrize("overrides", SMOKE, ids=[",".join(o) for o in SMOKE])
def test_fast_dev_run(make_cfg, tmp_path: Path, overrides: tuple[str, ...]) -> None:
    from embedlab.jobs import train

    cfg = make_cfg(*overrides, "debug=fast", "data=lee")
    metrics, objects = train(cfg)
    results = json.loads((tmp_path / "results.json").read_text())
    assert set(results["metrics"]) == set(metrics)
    for split in ("val", "test"):  # real, finite correlations with their pair counts, never null
        for name in ("spearman_cosine", "pearson_cosine"):
            rho = results["metrics"][f"{split}/lee/{name}"]
            assert isinstance(rho, float) and math.isfinite(rho) and -1.0 <= rho <= 1.0, (name, rho)
        assert results["metrics"][f"{split}/lee/n_pairs"] > 0
    meta = results["meta"]
    assert meta["model"]["fingerprint"] and meta["data"]["fingerprint"]
    assert meta["packages"]["torch"] and "sha" in meta["git"] and meta["wall_time_s"] > 0
    assert (tmp_path / "model" / "modules.json").exists()
    if any(o.startswith("dimension=d") for o in overrides):
        size = cfg.dimension.size
        assert f"test/lee/spearman_cosine@{size}" in metrics
    if "dimension=proj128" in overrides:
        assert objects["model"].get_embedding_dimension() == 128


def test_dimension_larger_than_model_is_rejected(make_cfg) -> None:
    from embedlab.errors import ConfigError
    from embedlab.jobs import train

    with pytest.raises(ConfigError, match="dimension=d128 asks for 128 dimensions.*gives 32"):
        train(make_cfg("model=tiny_bert", "dimension=d128", "debug=fast", "logger=none"))


def test_mlm_through_train(make_cfg, tmp_path: Path) -> None:
    from embedlab.jobs import train

    metrics, _ = train(make_cfg("model=tiny_bert", "objective=mlm", "data=mlm_lee", "data.max_texts=40",
                                "logger=none", "+trainer.max_steps=2"))  # fmt: skip
    assert metrics["val/lee_background/perplexity_after"] > 0
    assert (tmp_path / "results.json").exists() and (tmp_path / "model" / "modules.json").exists()


def test_mlm_objective_needs_a_corpus(make_cfg) -> None:
    from embedlab.errors import ConfigError
    from embedlab.jobs import train

    with pytest.raises(ConfigError, match="continued MLM needs"):
        train(make_cfg("model=tiny_bert", "objective=mlm", "data=lee", "logger=none"))
