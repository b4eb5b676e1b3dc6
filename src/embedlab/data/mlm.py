"""Masked-LM batches: texts are tokenized once (truncation counted and logged) and masked by
transformers' ``DataCollatorForLanguageModeling`` with a seeded generator; held-out batches are
masked once, so every validation pass scores the same tokens."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from torch.nn.utils.rnn import pad_sequence

log = logging.getLogger(__name__)

Features = dict[str, list[Any]]


@dataclass(frozen=True)
class TokenizedTexts:
    """Per-text token features, plus how many texts lost tokens to truncation."""

    features: tuple[Features, ...]
    n_truncated: int
    max_tokens: int  # longest text before truncation, special tokens included

    def __len__(self) -> int:
        return len(self.features)


def tokenize_texts(
    tokenizer: Any,
    texts: Sequence[str],
    *,
    max_length: int,
    whole_word_mask: bool = False,
    what: str = "texts",
) -> TokenizedTexts:
    """Tokenize with truncation at ``max_length`` and count the texts that were cut; whole-word
    masking also keeps the tokenizer's word boundaries (``word_offsets``)."""
    if max_length < 4:
        raise ValueError(f"max_length must be >= 4 tokens, got {max_length}.")
    if not texts:
        raise ValueError(f"No {what} to tokenize.")
    full = tokenizer(list(texts), add_special_tokens=True, truncation=False, verbose=False)["input_ids"]
    lengths = [len(ids) for ids in full]
    n_truncated = sum(n > max_length for n in lengths)
    if whole_word_mask and not getattr(tokenizer, "is_fast", False):
        raise ValueError("Whole-word masking needs a fast tokenizer (word ids); this one is not.")
    enc = tokenizer(list(texts), truncation=True, max_length=max_length, return_special_tokens_mask=True)
    wanted = {"input_ids", "attention_mask", "token_type_ids"}
    keys = [k for k in enc.keys() if k in wanted] + ["special_tokens_mask"]
    features = tuple({k: list(enc[k][i]) for k in keys} for i in range(len(texts)))
    if whole_word_mask:
        for i, feats in enumerate(features):
            feats["offset_mapping"] = word_offsets(enc.word_ids(i))
    cut = f"{n_truncated} of {len(texts)} exceed {max_length} tokens and are truncated"
    cut = cut if n_truncated else f"none of {len(texts)} exceeds {max_length} tokens"
    log.log(logging.WARNING if n_truncated else logging.INFO, "%s: %s (longest %d).", what, cut, max(lengths))
    return TokenizedTexts(features, n_truncated, max(lengths))


def word_offsets(word_ids: Sequence[int | None]) -> list[tuple[int, int]]:
    """Offsets that touch exactly within a word, for whole-word masking.

    transformers joins a token to the previous one when its start offset equals the previous
    end. Real offsets break that for byte-level BPE (the leading space sits inside the token,
    so a whole text becomes one word); the pre-tokenizer's word ids are the reliable boundary.
    """
    offsets: list[tuple[int, int]] = []
    end, previous = 0, None
    for word in word_ids:
        if word is None:  # special token: never masked
            offsets.append((0, 0))
        else:
            end = (end if word == previous else end + 1) + 1
            offsets.append((end - 1, end))
        previous = word
    return offsets


class MLMCollator:
    """Pad token features and mask them with the transformers MLM collator (we pad ourselves:
    ``tokenizer.pad`` does not pad the ``offset_mapping`` that whole-word masking needs)."""

    def __init__(
        self,
        tokenizer: Any,
        *,
        mlm_probability: float = 0.15,
        whole_word_mask: bool = False,
        seed: int | None = None,
    ) -> None:
        import warnings

        from transformers import DataCollatorForLanguageModeling

        if not 0.0 < mlm_probability < 1.0:
            raise ValueError(f"mlm_probability must be in (0, 1), got {mlm_probability}.")
        if tokenizer.mask_token is None:
            raise ValueError("This tokenizer has no mask token, so it cannot be trained with masked LM.")
        with warnings.catch_warnings():  # whole-word masking always replaces with [MASK]; said in the docs
            warnings.simplefilter("ignore", UserWarning)
            opts = {"mlm_probability": mlm_probability, "whole_word_mask": whole_word_mask, "seed": seed}
            self.collator = DataCollatorForLanguageModeling(tokenizer, mlm=True, **opts)
        self.pad_id = int(tokenizer.pad_token_id)

    def pad(self, features: Sequence[Features]) -> dict[str, torch.Tensor]:
        """(B, T) tensors, offset_mapping (B, T, 2); pads with 0 except input ids and the specials mask."""
        fill = {"input_ids": self.pad_id, "special_tokens_mask": 1}
        pad = partial(pad_sequence, batch_first=True)
        return {
            k: pad([torch.tensor(f[k]) for f in features], padding_value=fill.get(k, 0)) for k in features[0]
        }

    def state_dict(self) -> dict[str, Any]:
        """The masking generator's state: a resumed run draws the masks the killed one would have."""
        gen = self.collator.generator
        return {} if gen is None else {"mask_rng": gen.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "mask_rng" not in state:
            return
        if self.collator.generator is None:
            self.collator.create_rng()
        self.collator.generator.set_state(state["mask_rng"])

    def __call__(self, features: Sequence[Features]) -> dict[str, torch.Tensor]:
        if self.collator.seed is not None and self.collator.generator is None:
            self.collator.create_rng()  # torch_call would do this; we call torch_mask_tokens directly
        batch = self.pad(features)
        specials = batch.pop("special_tokens_mask")
        offsets = batch.pop("offset_mapping", None)
        batch["input_ids"], batch["labels"] = self.collator.torch_mask_tokens(
            batch["input_ids"], special_tokens_mask=specials, offset_mapping=offsets
        )
        return batch


def masked_batches(
    collate: MLMCollator, tokenized: TokenizedTexts, batch_size: int
) -> list[dict[str, torch.Tensor]]:
    """Mask the texts once, in order, with a fresh seeded collator: fixed evaluation batches."""
    feats = tokenized.features
    return [collate(feats[i : i + batch_size]) for i in range(0, len(feats), batch_size)]
