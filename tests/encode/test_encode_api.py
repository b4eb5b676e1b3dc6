"""The Encoder object: settings checked up front, one cache key per (weights, modules, encode path),
the backend chosen by settings (no global state), cache hits that encode nothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from embedlab.encode.cache import EmbeddingCache
from embedlab.encode.encoder import Encoder, EncodeSettings
from embedlab.errors import ConfigError
from embedlab.models.encoder import EncoderSpec, build_encoder
from embedlab.models.pooling import check_pooling

TEXTS = ["one text", "two texts here", "one text", "three"]


@pytest.fixture(scope="module")
def tiny(tiny_model_dirs: dict[str, Path]):
    return build_encoder(EncoderSpec(name="b", name_or_path=str(tiny_model_dirs["bert"]), max_seq_length=64))[
        0
    ]


def test_settings_accept_the_config_alias_and_refuse_unknown_values() -> None:
    assert EncodeSettings(backend="sentence-transformers").backend == "reference"  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="Choose fast or reference"):
        EncodeSettings(backend="onnx")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="encode.precision"):
        EncodeSettings(backend="fast", precision="fp8")  # type: ignore[arg-type]


def test_backends_tag_the_key_and_encode_alike(tiny) -> None:
    ref, fast = Encoder(tiny), Encoder(tiny, EncodeSettings(backend="fast", precision="fp32"))
    assert ref.tag == "st-fp32" and fast.tag == "fast-fp32"
    assert ref.key.split(":")[0] == fast.key.split(":")[0] and ref.key != fast.key
    (a, sa), (b, sb) = ref.encode(TEXTS), fast.encode(TEXTS)
    np.testing.assert_allclose(a, b, atol=1e-5)
    assert (sa.n_texts, sa.n_encoded) == (sb.n_texts, sb.n_encoded) == (4, 3)


def test_encode_cached_reads_what_it_stored(tiny, tmp_path: Path) -> None:
    first, stats = Encoder(tiny, cache=EmbeddingCache(tmp_path)).encode_cached(TEXTS, what="sentences")
    reader = Encoder(tiny, cache=EmbeddingCache(tmp_path))
    again, recorded = reader.encode_cached(TEXTS, what="sentences")
    np.testing.assert_array_equal(first, again)
    assert recorded == stats and reader.cache.stats.n_encoded == 0 and reader.cache.stats.n_from_cache == 4
    other = reader.replace(cache=EmbeddingCache(None))
    assert other.key == reader.key and other.settings is reader.settings  # no second hash of the weights


def test_pooling_checks_name_the_choices() -> None:
    assert check_pooling("max", "fasttext") == "max"
    with pytest.raises(ConfigError, match=r"Choose one of \('mean', 'cls', 'max', 'weightedmean'\)"):
        check_pooling("median")
    with pytest.raises(ConfigError, match="pooling=cls does not apply to model=fasttext"):
        check_pooling("cls", "fasttext")
