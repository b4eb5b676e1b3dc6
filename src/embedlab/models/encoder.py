"""The sentence encoder: transformer + pooling (+ optional projection) + normalisation. A plain
sentence-transformers model, always assembled from modules rather than a checkpoint's own pooling,
so the pooling axis really changes the pooling."""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from embedlab.errors import ConfigError, ModelUnavailableError
from embedlab.models.pooling import build_pooling, check_pooling
from embedlab.models.resolve import ResolvedModel, resolve_model
from embedlab.models.tiny import build_tiny_model

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

log = logging.getLogger(__name__)

POSITION_OFFSET_MODELS = frozenset({"roberta", "xlm-roberta", "mpnet", "camembert", "longformer"})


@dataclass(frozen=True)
class EncoderSpec:
    """Everything needed to build an encoder; mirrors the `model/` and `pooling/` configs."""

    name: str
    name_or_path: str | None = None
    packaged: str | None = None
    revision: str | None = None
    tiny_architecture: str | None = None
    max_seq_length: int = 256
    pooling: str = "mean"  # one of models.pooling.POOLING_MODES
    normalize: bool = True
    projection_dim: int | None = None  # a learned Dense layer after pooling (None: none)
    trust_remote_code: bool = False


def locate(spec: EncoderSpec) -> ResolvedModel:
    if spec.tiny_architecture:
        path = build_tiny_model(spec.tiny_architecture, max_seq_length=spec.max_seq_length)
        return ResolvedModel(path, f"tiny:{spec.tiny_architecture}", spec.name)
    return resolve_model(spec.name_or_path, packaged=spec.packaged, revision=spec.revision)


def freeze_unused_pooler(auto_model) -> None:
    """Sentence embeddings never use BERT's pooler, and its gradient-less parameters make DDP fail:
    frozen, it is kept (and saved), so a saved model holds every weight its architecture loads."""
    if getattr(auto_model, "pooler", None) is not None:
        auto_model.pooler.requires_grad_(False)


@contextlib.contextmanager
def load_errors(what: str, path: Path, fix: str) -> Iterator[None]:
    """A model folder that cannot be read (truncated, corrupt, missing files) as one clear error."""
    from safetensors import SafetensorError

    try:
        yield
    except (OSError, ValueError, KeyError, SafetensorError) as exc:
        raise ModelUnavailableError(
            f"{what} at {path} could not be loaded ({type(exc).__name__}: {str(exc)[:300]}). Fix: {fix}"
        ) from exc


def load_saved_encoder(spec: EncoderSpec) -> tuple[SentenceTransformer, ResolvedModel]:
    """A folder a run saved, with its own modules (pooling, projection) kept."""
    from sentence_transformers import SentenceTransformer

    resolved = locate(spec)
    fix = "point model.name_or_path at a folder a run wrote (<run dir>/model); if its files are truncated "
    with load_errors(f"Saved model '{spec.name}'", resolved.path, fix + "or corrupt, write it again."):
        model = SentenceTransformer(
            str(resolved.path), device="cpu", trust_remote_code=spec.trust_remote_code
        )
    freeze_unused_pooler(model[0].auto_model)
    return model, resolved


def build_encoder(spec: EncoderSpec, device: str | None = "cpu") -> tuple[SentenceTransformer, ResolvedModel]:
    """Assemble a SentenceTransformer for ``spec``; returns it and where it came from."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.models import Dense, Normalize, Transformer

    check_pooling(spec.pooling)
    if spec.trust_remote_code:
        log.warning("trust_remote_code is ON for model %s: its repository code will run.", spec.name)
    resolved = locate(spec)
    remote = {"trust_remote_code": spec.trust_remote_code}
    fix = "check that the folder holds config.json, the weights (model.safetensors) and the tokenizer; "
    with load_errors(
        f"Model '{spec.name}'", resolved.path, fix + "delete and re-download it if it is corrupt."
    ):
        transformer = Transformer(
            str(resolved.path),
            max_seq_length=spec.max_seq_length,
            model_kwargs=remote,
            processor_kwargs=remote,
            config_kwargs=remote,
        )
    config = transformer.auto_model.config
    positions = getattr(config, "max_position_embeddings", None)
    if positions and config.model_type in POSITION_OFFSET_MODELS:
        positions -= 2  # RoBERTa-style position ids start after the padding index
    if positions and spec.max_seq_length > positions:
        raise ConfigError(
            f"model.max_seq_length={spec.max_seq_length} exceeds the {positions} positions of "
            f"{spec.name}. Fix: set model.max_seq_length <= {positions}."
        )
    freeze_unused_pooler(transformer.auto_model)
    hidden = transformer.get_embedding_dimension()
    modules: list = [transformer, build_pooling(hidden, spec.pooling)]
    if spec.projection_dim:
        modules.append(Dense(hidden, spec.projection_dim, bias=True, activation_function=torch.nn.Identity()))
    if spec.normalize:
        modules.append(Normalize())
    return SentenceTransformer(modules=modules, device=device), resolved


def embedding_dimension(model: SentenceTransformer) -> int:
    if (dim := model.get_embedding_dimension()) is None:  # pragma: no cover - ours all declare one
        raise ConfigError("The encoder does not declare its embedding dimension.")
    return int(dim)


def model_fingerprint(resolved: ResolvedModel) -> str:
    """sha256 over the names and bytes of the model folder's weight, config and tokenizer files."""
    path = Path(resolved.path)
    digest = hashlib.sha256()
    suffixes = {".safetensors", ".bin", ".json", ".txt", ".model", ".onnx"}
    for file in sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in suffixes):
        digest.update(str(file.relative_to(path)).encode())
        with file.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 22), b""):
                digest.update(block)
    return digest.hexdigest()[:16]
