"""data=stsb_multi_mt (STS-B in 11 languages) and the hub-only multilingual model configs."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import pytest

LANGS = ["en", "de", "es", "fr", "it", "ja", "nl", "pl", "pt", "ru", "zh"]


@pytest.mark.parametrize("lang", LANGS)
def test_every_language_loads_the_release_rows(make_cfg, data_dir: Path, lang: str) -> None:
    from embedlab.config import build_specs
    from embedlab.data.sts import load_sts

    cfg = make_cfg("data=stsb_multi_mt", f"data.lang={lang}", task="evaluate")
    assert cfg.data.name == f"stsb_{lang}" and cfg.monitor == f"test/stsb_{lang}/spearman_cosine"
    data = load_sts(build_specs(cfg, check=False).data)
    assert {k: len(v) for k, v in data.splits.items()} == {"train": 5749, "validation": 1500, "test": 1379}
    with (data_dir / "stsb_multi_mt" / f"stsb-{lang}-test.csv").open(encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))  # the release's own reading (README: csv, excel dialect)
    test = data.splits["test"]
    assert list(test.sentence1) == [r[0] for r in rows] and list(test.sentence2) == [r[1] for r in rows]
    assert list(test.scores) == [float(r[2]) for r in rows]


def sts_data(cfg):
    """The test split of the STS set ``cfg`` composes."""
    from embedlab.config import build_specs
    from embedlab.data.sts import load_sts

    return load_sts(build_specs(cfg, check=False).data, splits=("test",)).splits["test"]


def test_english_matches_the_original_stsb_release(make_cfg, data_dir: Path) -> None:
    mt = sts_data(make_cfg("data=stsb_multi_mt", "data.lang=en"))
    orig = sts_data(make_cfg("data=stsb"))
    assert mt.scores == orig.scores
    same = sum(a == b for a, b in zip(mt.sentence1, orig.sentence1, strict=True))
    assert same / len(mt) > 0.95  # the MT release normalised some quotes and whitespace


def test_unknown_language_names_the_missing_file(make_cfg, data_dir: Path) -> None:
    from embedlab.errors import DataError

    with pytest.raises(DataError, match=r"(?s)stsb-xx-\w+\.csv.*folder holds.*stsb-de-dev\.csv"):
        sts_data(make_cfg("data=stsb_multi_mt", "data.lang=xx"))


def test_evaluate_writes_per_language_keys(make_cfg, data_dir: Path, tmp_path: Path) -> None:
    from embedlab.jobs import evaluate

    cfg = make_cfg("model=tiny_xlmr", "data=stsb_multi_mt", "data.lang=de", "data.max_pairs_per_split=40",
                   "eval_splits=[test]", "logger=none", task="evaluate")  # fmt: skip
    metrics, _ = evaluate(cfg)
    assert -1.0 <= metrics["test/stsb_de/spearman_cosine"] <= 1.0
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["meta"]["data"]["pairs"] == {"train": 40, "validation": 40, "test": 40}


@pytest.mark.parametrize("model", ["multilingual", "xlmr"])
def test_hub_only_models_fail_fast_offline(make_cfg, monkeypatch: pytest.MonkeyPatch, model: str) -> None:
    from huggingface_hub import snapshot_download

    from embedlab.config import build_specs
    from embedlab.errors import ModelUnavailableError
    from embedlab.tasks.model import build_model

    cfg = make_cfg(f"model={model}", task="evaluate")
    try:
        snapshot_download(cfg.model.name_or_path, local_files_only=True)
        pytest.skip(f"{cfg.model.name_or_path} is in the local Hugging Face cache")
    except Exception:
        pass
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(ModelUnavailableError) as err:
        build_model(build_specs(cfg))
    assert time.perf_counter() - start < 10
    message = str(err.value)
    assert cfg.model.name_or_path in message and f"hf download {cfg.model.name_or_path}" in message
    assert "model=minilm" in message  # names an offline alternative
