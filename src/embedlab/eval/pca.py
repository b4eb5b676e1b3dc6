"""PCA as an evaluation-time dimension (no Matryoshka training needed): scikit-learn's exact
``PCA(svd_solver="full")`` on L2-normalised float64 embeddings of texts the evaluation never scores,
rounded to float32 once and cached under (encoder, fit texts, k), so later jobs neither refit nor re-encode.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from embedlab.encode.cache import EmbeddingCache, cache_key, texts_key
from embedlab.eval.arrays import unit_rows

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PCAProjection:
    """A fitted projection: ``mean`` (D,), ``components`` (k, D), both float32."""

    mean: np.ndarray
    components: np.ndarray
    explained_variance_ratio: np.ndarray  # (k,): share of the fit set's variance per component

    @property
    def n_components(self) -> int:
        return int(self.components.shape[0])

    @property
    def tag(self) -> str:
        return f"pca{self.n_components}"  # the metric-key suffix without '@'

    def transform(self, embeddings: np.ndarray) -> np.ndarray:
        """(N, D) embeddings -> (N, k) unit vectors in the PCA basis."""
        x = np.asarray(embeddings, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.mean.shape[0]:
            raise ValueError(
                f"PCA was fitted on {self.mean.shape[0]}-dim embeddings; got an array of shape {x.shape}."
            )
        return unit_rows((unit_rows(x) - self.mean) @ self.components.T)

    def to_array(self) -> np.ndarray:
        """(k + 2, D) float32: mean, components, then the variance ratios (zero-padded)."""
        k, d = self.components.shape
        evr = np.zeros((1, d), np.float32)
        evr[0, :k] = self.explained_variance_ratio
        return np.vstack([self.mean[None, :], self.components, evr]).astype(np.float32)

    @classmethod
    def from_array(cls, arr: np.ndarray) -> PCAProjection:
        k = arr.shape[0] - 2
        return cls(arr[0].copy(), arr[1 : k + 1].copy(), arr[k + 1, :k].copy())


def fit_pca(embeddings: np.ndarray, n_components: int) -> PCAProjection:
    """PCA of the L2-normalised ``embeddings`` (N, D), keeping ``n_components`` directions."""
    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"PCA needs a 2-D (N, D) array of embeddings, got shape {x.shape}.")
    n, d = x.shape
    if not 1 <= n_components <= d:
        raise ValueError(
            f"PCA to {n_components} dimensions needs embeddings of at least that size; these have {d}. "
            f"Pick dimension.size <= {d}."
        )
    if n < n_components:
        raise ValueError(
            f"PCA to {n_components} dimensions needs at least {n_components} fit texts; got {n}. "
            f"Use more training data (e.g. a larger data.max_pairs_per_split) or a smaller PCA dimension."
        )
    from sklearn.decomposition import PCA

    fit = PCA(n_components=n_components, svd_solver="full").fit(unit_rows(x))
    return PCAProjection(
        fit.mean_.astype(np.float32),
        np.ascontiguousarray(fit.components_, dtype=np.float32),
        fit.explained_variance_ratio_.astype(np.float32),
    )


def pca_key(model_key: str, fit_texts: Sequence[str], n_components: int) -> str:
    """Cache key of a projection: the encoder, the exact fit texts in order, k."""
    return cache_key("pca", model_key, texts_key(fit_texts), str(n_components))


def fitted_pca(
    fit_embeddings: Callable[[], np.ndarray], n_components: int, *, cache: EmbeddingCache, key: str
) -> PCAProjection:
    """The projection cached under ``key``, else fit on ``fit_embeddings()`` (only called on a miss)."""
    hit = cache.get(key)
    if hit is not None and hit.shape[0] == n_components + 2:
        log.info("Read the %d-component PCA from the cache (%s)", n_components, key)
        return PCAProjection.from_array(hit)
    emb = fit_embeddings()
    pca = fit_pca(emb, n_components)  # float32 everywhere, as a cache hit gives
    cache.put(key, pca.to_array(), {"what": "pca", "n_components": n_components, "n_fit": len(emb)})
    kept = 100 * float(pca.explained_variance_ratio.sum())
    log.info(
        "Fitted PCA to %d dimensions on %d embeddings: %.1f%% of variance kept", n_components, len(emb), kept
    )
    return pca
