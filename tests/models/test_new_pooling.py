"""Adding a pooling is two files: its name in ``models/pooling.py``'s ``POOLING_MODES`` and
``configs/pooling/<mode>.yaml``. Here ``lasttoken`` (which sentence-transformers' ``Pooling`` knows
and the configs lack) is added that way and must compose, build and encode."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from embedlab.config import build_specs
from embedlab.errors import ConfigError
from embedlab.models import pooling
from embedlab.models.encoder import build_encoder


def test_a_new_sentence_transformers_pooling_is_one_name_and_one_yaml(
    make_cfg, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pooling, "POOLING_MODES", (*pooling.POOLING_MODES, "lasttoken"))  # file 1
    (tmp_path / "configs" / "pooling").mkdir(parents=True)
    (tmp_path / "configs" / "pooling" / "lasttoken.yaml").write_text(
        "# The last real token.\nmode: lasttoken\n"
    )
    search_path = f"hydra.searchpath=[file://{tmp_path / 'configs'}]"  # file 2, beside configs/pooling/
    cfg = make_cfg(search_path, "model=tiny_bert", "pooling=lasttoken", task="evaluate")
    spec = build_specs(cfg, check=False).model
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
