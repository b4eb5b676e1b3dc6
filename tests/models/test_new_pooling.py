"""Adding a pooling is two files: its name in ``models/pooling.py``'s ``POOLING_MODES`` and
``configs/pooling/<mode>.yaml``. Here ``lasttoken`` (which sentence-transformers' ``Pooling`` knows
and the configs lack) is added that way, in a copy of configs/, and must compose, build and encode."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir

from conftest import CONFIGS
from embedlab.config.specs import encoder_spec
from embedlab.errors import ConfigError
from embedlab.models import pooling
from embedlab.models.encoder import build_encoder


def test_a_new_sentence_transformers_pooling_is_one_name_and_one_yaml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pooling, "POOLING_MODES", (*pooling.POOLING_MODES, "lasttoken"))  # file 1
    configs = Path(shutil.copytree(CONFIGS, tmp_path / "configs"))
    (configs / "pooling" / "lasttoken.yaml").write_text("# The last real token.\nmode: lasttoken\n")  # file 2
    with initialize_config_dir(config_dir=str(configs), version_base="1.3"):
        cfg = compose("evaluate", overrides=["model=tiny_bert", "pooling=lasttoken"])
    spec = encoder_spec(cfg)
    assert spec.pooling == "lasttoken"
    model, _ = build_encoder(replace(spec, normalize=False))  # unnormalised: compare with raw tokens
    assert model[1].pooling_mode == "lasttoken"

    texts = ["A man is playing a guitar.", "Short."]
    features = model.preprocess(texts)
    with torch.inference_mode():
        tokens = model[0](dict(features))["token_embeddings"]  # (B, T, H)
    last = features["attention_mask"].sum(1) - 1  # right padding: the last real token of each text
    expected = tokens[torch.arange(len(texts)), last].numpy()
    np.testing.assert_allclose(model.encode(texts), expected, atol=1e-5)
    with pytest.raises(ConfigError, match="does not apply to model=fasttext"):
        pooling.check_pooling("lasttoken", "fasttext")  # FASTTEXT_POOLINGS decides, untouched
