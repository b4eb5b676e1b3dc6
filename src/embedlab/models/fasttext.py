"""A fastText sentence encoder: mean (or max) of word vectors that also cover unseen words, through
hashed character n-grams (Bojanowski et al., 2017): the classical answer to out-of-vocabulary words.
Trained with gensim, cached on disk, wrapped as a sentence-transformers module so it runs through the
same encode, cache and evaluation as the transformers. A "token" here is a word."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from sentence_transformers.base.modules import InputModule

from embedlab.errors import ConfigError, DataError
from embedlab.models.pooling import check_pooling
from embedlab.models.resolve import ResolvedModel
from embedlab.resources import publish_dir

if TYPE_CHECKING:
    from gensim.models.fasttext import FastTextKeyedVectors
    from sentence_transformers import SentenceTransformer

log = logging.getLogger(__name__)

FastTextPooling = Literal["mean", "max"]  # models.pooling.FASTTEXT_POOLINGS
CORPUS_SOURCES: tuple[str, ...] = ("eval", "lee", "wiki", "lines")
WORD_RE = re.compile(r"\w+")  # Unicode letters, digits and "_": the same split for training and encoding


def words(text: str, lowercase: bool = True) -> list[str]:
    return WORD_RE.findall(text.lower() if lowercase else text)


def check_fasttext_settings(*, pooling: str, fit: bool, projection_dim: int | None, task: str) -> None:
    check_pooling(pooling, "fasttext")
    if fit:
        raise ConfigError(
            "model=fasttext cannot be fine-tuned here: its word vectors come from unsupervised gensim "
            "training on model.fasttext.corpus. Fix: run it with evaluate.py (or fit=false)."
        )
    if projection_dim:
        raise ConfigError(
            "dimension=proj* adds a learned projection, which needs fine-tuning; model=fasttext is "
            "evaluate-only. Fix: dimension=full or a truncation (dimension=d64); for fewer dimensions "
            "train smaller vectors with model.fasttext.vector_size=..."
        )
    if task == "mlm":
        raise ConfigError("model=fasttext has no masked-LM head: use it on STS, retrieval or bitext data.")


class WordTokenizer:
    """Words -> vocabulary ids, callable like a Hugging Face tokenizer so the encode path can count
    "tokens" (words) and truncation for this model too."""

    model_input_names = ("input_ids",)
    pad_token_id = None
    padding_side = "right"

    def __init__(self, vocab: Sequence[str], lowercase: bool = True) -> None:
        self.vocab: dict[str, int] = {w: i for i, w in enumerate(vocab)}
        if len(self.vocab) != len(vocab):
            raise ValueError("The fastText vocabulary holds duplicate words.")
        self.lowercase = lowercase
        self.unk_token_id = len(vocab)

    def __len__(self) -> int:
        return len(self.vocab)

    def tokenize(self, text: str) -> list[str]:
        return words(text, self.lowercase)

    def __call__(
        self,
        texts: str | Sequence[str],
        *,
        truncation: bool = False,
        max_length: int | None = None,
        **_: Any,  # add_special_tokens, return_attention_mask, verbose ...: nothing to do for words
    ) -> dict[str, list[list[int]]]:
        batch = [texts] if isinstance(texts, str) else list(texts)
        ids = [[self.vocab.get(w, self.unk_token_id) for w in self.tokenize(t)] for t in batch]
        if truncation and max_length is not None:
            ids = [row[:max_length] for row in ids]
        return {"input_ids": ids}


class FastTextEmbedding(InputModule):
    """Sentence vector = mean (or max) over words of gensim's ``wv[word]`` (own vector, else n-gram
    mean). One ``EmbeddingBag`` holds rows ``[0, V)`` words and ``[V, V + bucket)`` n-grams."""

    config_keys = ["min_n", "max_n", "bucket", "pooling", "max_seq_length", "lowercase"]

    def __init__(
        self,
        vocab: Sequence[str],
        weights: np.ndarray | torch.Tensor,
        *,
        min_n: int = 3,
        max_n: int = 6,
        bucket: int = 200_000,
        pooling: FastTextPooling = "mean",
        max_seq_length: int = 256,
        lowercase: bool = True,
    ) -> None:
        super().__init__()
        check_pooling(pooling, "fasttext")
        weights = torch.as_tensor(np.asarray(weights, dtype=np.float32))
        if weights.ndim != 2 or weights.shape[0] != len(vocab) + bucket:
            raise ValueError(
                f"fastText weights must have vocabulary + bucket = {len(vocab)} + {bucket} rows, "
                f"got shape {tuple(weights.shape)}."
            )
        self.embedding = torch.nn.EmbeddingBag.from_pretrained(weights, freeze=True, mode="mean")
        self.tokenizer = WordTokenizer(vocab, lowercase)
        self.vocab = list(vocab)
        self.min_n, self.max_n, self.bucket = int(min_n), int(max_n), int(bucket)
        self.pooling = pooling
        self.max_seq_length = int(max_seq_length)
        self.lowercase = lowercase
        self.vocab_sha = hashlib.sha256("\n".join(self.vocab).encode()).hexdigest()[:16]
        self._rows: dict[str, list[int]] = {}  # word -> vector rows, memoised (n-gram hashing is Python)

    @classmethod
    def from_keyed_vectors(cls, kv: FastTextKeyedVectors, **settings: Any) -> FastTextEmbedding:
        """``settings``: pooling, max_seq_length, lowercase."""
        if not kv.bucket:
            raise ConfigError(
                "This fastText model has no n-gram buckets (bucket=0): it cannot embed unseen words."
            )
        weights = np.concatenate([kv.vectors, kv.vectors_ngrams]).astype(np.float32)  # (V + bucket, D)
        ngrams = {"min_n": kv.min_n, "max_n": kv.max_n, "bucket": kv.bucket}
        return cls(list(kv.index_to_key), weights, **ngrams, **settings)

    def word_rows(self, word: str) -> list[int]:
        """Rows whose mean is the word's vector: its own, or its n-grams' ([] if it has none)."""
        from gensim.models.fasttext import ft_ngram_hashes

        if word not in self._rows:
            idx = self.tokenizer.vocab.get(word)
            hashes = ft_ngram_hashes(word, self.min_n, self.max_n, self.bucket) if idx is None else []
            self._rows[word] = [idx] if idx is not None else [len(self.vocab) + int(h) for h in hashes]
        return self._rows[word]

    def preprocess(
        self, inputs: Sequence[str], prompt: str | None = None, **kwargs: Any
    ) -> dict[str, torch.Tensor]:
        """Flat vector rows per word, word offsets, and the number of words per text."""
        if prompt:
            inputs = self._prepend_prompt(list(inputs), prompt)
        rows, offsets, n_words = [], [], []
        for text in inputs:
            if not isinstance(text, str):
                raise TypeError(f"FastTextEmbedding embeds text only, got {type(text).__name__}.")
            # an unknown word too short for any n-gram has no vector: skipped
            kept = [r for r in map(self.word_rows, self.tokenizer.tokenize(text)[: self.max_seq_length]) if r]
            for word_rows in kept:
                offsets.append(len(rows))
                rows.extend(word_rows)
            n_words.append(len(kept))
        return {
            "input_ids": torch.tensor(rows, dtype=torch.long),
            "offsets": torch.tensor(offsets, dtype=torch.long),
            "text_lengths": torch.tensor(n_words, dtype=torch.long),
        }

    def forward(self, features: dict[str, torch.Tensor], **kwargs: Any) -> dict[str, torch.Tensor]:
        lengths = features["text_lengths"]  # (N,) words per text
        n_texts, dim = lengths.shape[0], self.embedding.embedding_dim
        weight = self.embedding.weight
        out = torch.zeros(n_texts, dim, dtype=weight.dtype, device=weight.device)  # (N, D)
        if features["offsets"].numel():
            word_vecs = self.embedding(features["input_ids"], features["offsets"])  # (W, D)
            text_of_word = torch.arange(n_texts, device=lengths.device).repeat_interleave(lengths)  # (W,)
            if self.pooling == "mean":
                out.index_add_(0, text_of_word, word_vecs)
                out /= lengths.clamp(min=1).unsqueeze(1).to(out.dtype)
            else:
                index = text_of_word.unsqueeze(1).expand_as(word_vecs)  # (W, D)
                out.scatter_reduce_(0, index, word_vecs, reduce="amax", include_self=False)
        # a text without words (only punctuation) keeps the zero vector; Normalize leaves it zero
        features["sentence_embedding"] = out
        return features

    def get_embedding_dimension(self) -> int:
        return int(self.embedding.embedding_dim)

    def __repr__(self) -> str:  # part of the embedding cache key: every setting that changes outputs
        return (
            f"FastTextEmbedding({self.get_config_dict()}, vocab={len(self.vocab)}, vocab_sha={self.vocab_sha}, "
            f"dim={self.get_embedding_dimension()})"
        )

    def save(self, output_path: str, *args: Any, **kwargs: Any) -> None:
        self.save_config(output_path)
        self.save_torch_weights(output_path)
        Path(output_path, "vocab.json").write_text(
            json.dumps(self.vocab, ensure_ascii=False), encoding="utf-8"
        )

    @classmethod
    def load(cls, model_name_or_path: str, subfolder: str = "", **kwargs: Any) -> FastTextEmbedding:
        hub = {k: kwargs[k] for k in ("token", "cache_folder", "revision", "local_files_only") if k in kwargs}
        config = cls.load_config(model_name_or_path, subfolder=subfolder, **hub)
        weights = cls.load_torch_weights(model_name_or_path, subfolder=subfolder, **hub)
        vocab_path = cls.load_file_path(model_name_or_path, filename="vocab.json", subfolder=subfolder, **hub)
        vocab = json.loads(Path(vocab_path).read_text(encoding="utf-8"))
        return cls(vocab, weights["embedding.weight"], **config)


@dataclass(frozen=True)
class FastTextParams:
    """gensim FastText training parameters (``model.fasttext.params``)."""

    vector_size: int = 100
    window: int = 5
    min_count: int = 2
    epochs: int = 10
    sg: int = 1  # skip-gram: better than CBOW for rare words on small corpora (Bojanowski et al.)
    min_n: int = 3
    max_n: int = 6
    bucket: int = 200_000  # gensim's default 2M rows would be 800 MB at 100 dims
    negative: int = 5
    sample: float = 1e-3
    seed: int = 42
    lowercase: bool = True

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> FastTextParams:
        known = {f.name for f in fields(cls)}
        if unknown := sorted(set(values) - known):
            raise ConfigError(f"Unknown fastText parameter(s) {unknown}. Known: {sorted(known)}.")
        return cls(**values)

    def __post_init__(self) -> None:
        problems = []
        if self.vector_size < 1 or self.epochs < 1 or self.window < 1 or self.min_count < 1:
            problems.append("vector_size, epochs, window and min_count must be >= 1")
        if not 1 <= self.min_n <= self.max_n:
            problems.append(f"need 1 <= min_n <= max_n, got min_n={self.min_n}, max_n={self.max_n}")
        if self.bucket < 1:
            problems.append("bucket must be >= 1: without n-gram buckets unseen words get no vector")
        if self.sg not in (0, 1):
            problems.append(f"sg must be 0 (CBOW) or 1 (skip-gram), got {self.sg}")
        if problems:
            raise ConfigError("model.fasttext: " + "; ".join(problems) + ".")


def corpus_key(texts: Sequence[str], params: FastTextParams) -> str:
    import gensim

    digest = hashlib.sha256(json.dumps([asdict(params), gensim.__version__]).encode())
    for t in texts:
        digest.update(t.encode("utf-8", "surrogatepass"))
        digest.update(b"\x00")
    return digest.hexdigest()[:20]


def train_fasttext(
    texts: Sequence[str], params: FastTextParams, cache_dir: str | Path | None, *, corpus_name: str = "texts"
) -> tuple[FastTextKeyedVectors, Path, bool]:
    """(vectors, their folder, read from the cache?) for ``texts``; seeded, one worker thread, so the
    same texts and parameters give the same vectors. ``cache_dir=None``: a fresh temporary folder."""
    from gensim.models import FastText
    from gensim.models.fasttext import FastTextKeyedVectors

    key = corpus_key(texts, params)
    # without a cache the vectors still go to a folder: it is what the run's model fingerprint hashes
    root = Path(cache_dir) / "fasttext" if cache_dir else Path(tempfile.mkdtemp(prefix="embedlab-fasttext-"))
    folder = root / key
    if (folder / "meta.json").exists():
        log.info("fastText vectors for %s read from the cache (%s)", corpus_name, folder)
        return FastTextKeyedVectors.load(str(folder / "vectors.kv")), folder, True
    sentences = [w for w in (words(t, params.lowercase) for t in texts) if w]
    n_words = sum(map(len, sentences))
    if not sentences:
        raise DataError(f"The fastText training corpus '{corpus_name}' holds no words.")
    log.info("Training fastText on %s: %d texts, %d words", corpus_name, len(sentences), n_words)
    p = asdict(params)
    lowercase = p.pop("lowercase")
    try:
        kv = FastText(sentences=sentences, workers=1, **p).wv
    except RuntimeError as exc:  # gensim: "you must first build vocabulary before training the model"
        raise DataError(
            f"fastText found no word occurring >= {params.min_count} times in '{corpus_name}' "
            f"({n_words} words): {exc}. Fix: a larger corpus, or model.fasttext.min_count=1."
        ) from exc
    counts = {"n_texts": len(sentences), "n_words": n_words, "vocab": len(kv)}
    meta = {"key": key, "corpus": corpus_name, **counts, "params": {**p, "lowercase": lowercase}}
    with publish_dir(folder, "meta.json") as staged:
        kv.save(str(staged / "vectors.kv"))
        (staged / "meta.json").write_text(json.dumps(meta, indent=1))  # what the model fingerprint hashes
    return kv, folder, False


def build_fasttext_encoder(
    texts: Sequence[str],
    params: FastTextParams,
    *,
    corpus_name: str,
    pooling: str = "mean",
    max_seq_length: int = 256,
    cache_dir: str | Path | None = None,
) -> tuple[SentenceTransformer, ResolvedModel]:
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.models import Normalize

    check_pooling(pooling, "fasttext")  # before training, not after
    kv, folder, cached = train_fasttext(texts, params, cache_dir, corpus_name=corpus_name)
    module = FastTextEmbedding.from_keyed_vectors(
        kv, pooling=pooling, max_seq_length=max_seq_length, lowercase=params.lowercase
    )
    model = SentenceTransformer(modules=[module, Normalize()], device="cpu")
    log.info("fastText encoder: %d words, %d n-gram buckets, %d dims", len(kv), kv.bucket, kv.vector_size)
    source = f"fasttext:{corpus_name}" + (":cached" if cached else "")
    return model, ResolvedModel(folder, source, "fasttext")
