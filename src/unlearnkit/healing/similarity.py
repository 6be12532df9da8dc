"""Similarity measures for replacing deleted samples, each as an embedding ranked by Euclidean distance.

- ``euclidean``: raw pixels (inputs scaled to [0, 1] and flattened); needs no model.
- ``cosine``: the model's penultimate features (``forward_features``), L2-normalised — for unit
  vectors ‖a − b‖² = 2 − 2 cos(a, b), so the Euclidean ranking is the cosine ranking.
- ``mahalanobis``: the model's features, centred and whitened by the inverse Cholesky factor of a
  Ledoit–Wolf shrinkage covariance fitted on ``fit_on`` — then ‖W(a − b)‖² = (a − b)ᵀΣ⁻¹(a − b).

An :class:`Embedder` is fitted once (it keeps a frozen copy of the model), so the same sample always
gets the same vector however the caller's model changes afterwards. Embeddings are float32 (the
whitening is computed in float64).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.pool import Samples
from ..errors import ConfigError
from ..training.evaluate import predict_features

SIMILARITIES = ("euclidean", "cosine", "mahalanobis")


@dataclass(frozen=True, eq=False)
class Embedder:
    """Maps samples to vectors whose Euclidean distance ranks pairs like ``similarity`` does."""

    similarity: str
    model: nn.Module | None = None
    mean: Tensor | None = None
    whiten: Tensor | None = None

    def __call__(self, samples: Samples) -> Tensor:
        if self.similarity == "euclidean":
            x = samples.pool.x[samples.ids]
            x = x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()
            return x.flatten(1)
        features = predict_features(self.model, samples)
        if self.similarity == "cosine":
            return F.normalize(features, dim=1)
        return ((features.double() - self.mean) @ self.whiten.T).float()


def fit_similarity(similarity: str, *, model: nn.Module | None = None, fit_on: Samples | None = None) -> Embedder:
    """Fit ``similarity`` (``euclidean``, ``cosine`` or ``mahalanobis``).

    Args:
        model: the classifier whose features define ``cosine`` and ``mahalanobis`` (copied).
        fit_on: the samples whose feature covariance ``mahalanobis`` estimates.
    Raises:
        ConfigError: an unknown similarity, or a missing model / fitting set.
    """
    if similarity not in SIMILARITIES:
        raise ConfigError(f"unknown similarity {similarity!r}; valid: {', '.join(SIMILARITIES)}")
    if similarity == "euclidean":
        return Embedder("euclidean")
    if model is None:
        raise ConfigError(f"the {similarity} similarity works in a model's feature space: give the model")
    frozen = copy.deepcopy(model).eval()
    if similarity == "cosine":
        return Embedder("cosine", frozen)
    if fit_on is None or len(fit_on) < 2:
        raise ConfigError("the mahalanobis similarity needs at least 2 samples to fit its covariance on")
    from sklearn.covariance import LedoitWolf

    features = predict_features(frozen, fit_on).double()
    lw = LedoitWolf().fit(features.numpy())
    cov = torch.from_numpy(lw.covariance_)
    chol = torch.linalg.cholesky(cov)
    whiten = torch.linalg.solve_triangular(chol, torch.eye(len(cov), dtype=cov.dtype), upper=False)
    return Embedder("mahalanobis", frozen, torch.from_numpy(lw.location_), whiten)
