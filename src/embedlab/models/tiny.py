"""Tiny, randomly initialised transformers of each architecture, built from a config: no real
weights can be downloaded here, so tests build a 2-layer model of each with a tokenizer of its family
(WordPiece, byte-level BPE, Unigram) trained on real text, cached on disk by their settings."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from embedlab.resources import cache_root, gensim_test_file, publish_dir

log = logging.getLogger(__name__)

ARCHITECTURES: tuple[str, ...] = ("bert", "roberta", "distilbert", "xlm-roberta", "mpnet")

_BERT_SPECIALS = {"pad": "[PAD]", "unk": "[UNK]", "cls": "[CLS]", "sep": "[SEP]", "mask": "[MASK]"}
_ROBERTA_SPECIALS = {"pad": "<pad>", "unk": "<unk>", "cls": "<s>", "sep": "</s>", "mask": "<mask>"}
_FAMILY: dict[str, tuple[str, dict[str, str]]] = {  # tokenizer family and special tokens
    "bert": ("wordpiece", _BERT_SPECIALS),
    "distilbert": ("wordpiece", _BERT_SPECIALS),
    "mpnet": ("wordpiece", _ROBERTA_SPECIALS),
    "roberta": ("bpe", _ROBERTA_SPECIALS),
    "xlm-roberta": ("unigram", _ROBERTA_SPECIALS),
}


def training_corpus() -> list[str]:
    """The Lee news corpus gensim ships, one document a line."""
    lines = gensim_test_file("lee_background.cor").read_text(encoding="latin-1").splitlines()
    return [line for line in lines if line.strip()]


def _train_tokenizer(family: str, specials: dict[str, str], vocab_size: int, texts: list[str]):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    sizes = {"vocab_size": vocab_size, "special_tokens": list(specials.values())}
    if family == "wordpiece":
        tok = Tokenizer(models.WordPiece(unk_token=specials["unk"]))
        tok.normalizer = normalizers.BertNormalizer(lowercase=True)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        trainer = trainers.WordPieceTrainer(**sizes)
        tok.decoder = decoders.WordPiece()
    elif family == "bpe":
        tok = Tokenizer(models.BPE(unk_token=None))
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        trainer = trainers.BpeTrainer(**sizes, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        tok.decoder = decoders.ByteLevel()
    else:  # unigram, as sentencepiece in XLM-R
        tok = Tokenizer(models.Unigram())
        tok.pre_tokenizer = pre_tokenizers.Metaspace()
        trainer = trainers.UnigramTrainer(**sizes, unk_token=specials["unk"])
        tok.decoder = decoders.Metaspace()
    tok.train_from_iterator(texts, trainer=trainer)
    cls, sep = specials["cls"], specials["sep"]
    pair = f"{cls} $A {sep} {sep} $B {sep}" if specials is _ROBERTA_SPECIALS else f"{cls} $A {sep} $B {sep}"
    tok.post_processor = processors.TemplateProcessing(
        single=f"{cls} $A {sep}",
        pair=pair,
        special_tokens=[(cls, tok.token_to_id(cls)), (sep, tok.token_to_id(sep))],
    )
    return tok


def _model_config(arch: str, vocab_size: int, pad_id: int, hidden: int, layers: int, max_len: int):
    from transformers import AutoConfig

    heads = max(1, hidden // 16)
    if arch == "distilbert":
        sizes = {"dim": hidden, "n_layers": layers, "n_heads": heads, "hidden_dim": 4 * hidden}
    else:
        sizes = {"hidden_size": hidden, "num_hidden_layers": layers, "num_attention_heads": heads}
        sizes["intermediate_size"] = 4 * hidden
        if arch in {"roberta", "xlm-roberta", "mpnet"}:
            max_len += 2  # position ids start after the padding index
        if arch in {"roberta", "xlm-roberta"}:
            sizes["type_vocab_size"] = 1
    return AutoConfig.for_model(
        arch, vocab_size=vocab_size, max_position_embeddings=max_len, pad_token_id=pad_id, **sizes
    )


def build_tiny_model(
    architecture: str,
    *,
    hidden_size: int = 32,
    num_layers: int = 2,
    vocab_size: int = 1000,
    max_seq_length: int = 128,
    seed: int = 0,
    cache_dir: Path | None = None,
) -> Path:
    """Build (or reuse) a tiny Hugging Face model folder (config, weights, tokenizer)."""
    if architecture not in _FAMILY:
        raise ValueError(f"Unknown tiny architecture '{architecture}'. Choose one of {ARCHITECTURES}.")
    sizes = {"hidden_size": hidden_size, "num_layers": num_layers, "vocab_size": vocab_size}
    settings = {"architecture": architecture, **sizes, "max_seq_length": max_seq_length, "seed": seed}
    key = hashlib.sha256(json.dumps({**settings, "version": 2}, sort_keys=True).encode()).hexdigest()[:10]
    target = (cache_dir or cache_root() / "tiny") / f"{architecture}-{key}"
    if (target / "config.json").exists():
        return target

    import torch
    from transformers import AutoModel, PreTrainedTokenizerFast

    family, specials = _FAMILY[architecture]
    tok = _train_tokenizer(family, specials, vocab_size, training_corpus())
    hf_tok = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        **{f"{role}_token": token for role, token in specials.items()},  # pad, unk, cls, sep, mask
        bos_token=specials["cls"],
        eos_token=specials["sep"],
        model_max_length=max_seq_length,
    )
    if architecture in {"roberta", "xlm-roberta", "distilbert", "mpnet"}:
        hf_tok.model_input_names = ["input_ids", "attention_mask"]  # no token types, as upstream
    config = _model_config(
        architecture, len(hf_tok), hf_tok.pad_token_id, hidden_size, num_layers, max_seq_length
    )
    torch.manual_seed(seed)
    model = AutoModel.from_config(config)
    with publish_dir(target, "config.json") as staged:
        model.save_pretrained(staged)
        hf_tok.save_pretrained(staged)
    log.info("Built tiny %s model at %s", architecture, target)
    return target
