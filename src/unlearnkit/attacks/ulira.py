"""U-LiRA: a per-example likelihood-ratio test of "unlearned" against "retrained" (Hayes et al. 2024,
"Inexact unlearning needs more careful evaluations", arXiv 2403.01218).

For every target example of D_f and every model of two families — N unlearned models and N oracles
retrained without D_f — the statistic is the logit-scaled confidence of the true label,
phi = log(p_y / (1 − p_y)) = z_y − logsumexp_{j≠y} z_j (the margin; metrics/per_example.py).
Per example, one Gaussian is fitted to phi under the unlearned models and one under the oracles; a
target model's score is log N(phi; mu_u, var_u) − log N(phi; mu_o, var_o) (higher = "unlearned").

Fit and targets never overlap: fold j holds out the j-th unlearned model and the j-th oracle as the
targets and fits on the other N − 1 of each (leave-one-pair-out, so every member is a target once).
Per-example variances need a few fitted models: with fewer than ``min_fit`` per side one variance
pooled over examples and both families is used (LiRA's "fixed variance"; with one model per side
any constant gives the same ranking, so 1 is used). AUC is over all (target model, example) pairs:
unlearned targets are positives, oracle targets negatives; 50% means indistinguishable from
retraining. TPR is read at 1% and 0.1% FPR with the FPR actually achieved (few negatives cannot
reach 0.1%). An example is *flagged* when its mean score over unlearned targets exceeds the
1%-FPR threshold of the examples' mean scores over oracle targets (about 1% under the null).

Not a registered MembershipAttack: it scores families of models, not one model on samples.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import roc_auc_score

from ..errors import ConfigError

MIN_FIT = 4  # fitted models per side from which per-example variances are used
FPRS = (0.01, 0.001)


@dataclass(frozen=True)
class ULiRAResult:
    """Figures in percent; ``scores``: per example, the mean score over its unlearned targets."""

    auc: float
    tpr_at_1: float
    fpr_at_1: float
    tpr_at_01: float
    fpr_at_01: float
    flagged: float
    n_examples: int
    n_models: int
    scores: np.ndarray

    def metrics(self, prefix: str = "ulira.") -> dict[str, float]:
        names = ("auc", "tpr_at_1", "fpr_at_1", "tpr_at_01", "fpr_at_01", "flagged", "n_examples", "n_models")
        return {prefix + n: float(getattr(self, n)) for n in names}


def check_families(unlearned: np.ndarray, oracle: np.ndarray) -> None:
    """Both ``(models, examples)`` arrays of finite values, with the same shape and at least 2 models."""
    for name, a in (("unlearned", unlearned), ("oracle", oracle)):
        if a.ndim != 2:
            raise ConfigError(f"U-LiRA: the {name} family's statistics must be (models, examples), got shape {a.shape}")
        if not np.isfinite(a).all():
            raise ConfigError(f"U-LiRA: the {name} family's statistics hold NaN or inf")
    if unlearned.shape != oracle.shape:
        raise ConfigError(f"U-LiRA: the unlearned family {unlearned.shape} and the oracle family {oracle.shape} must "
                          "have the same number of models and examples")
    if unlearned.shape[0] < 2:
        raise ConfigError(f"U-LiRA needs at least 2 models per family (one to fit, one as target), got {unlearned.shape[0]}")


def tpr_at_fpr(pos: np.ndarray, neg: np.ndarray, fpr: float) -> tuple[float, float]:
    """``(TPR, achieved FPR)`` at the lowest threshold whose FPR on ``neg`` does not exceed ``fpr``
    (a sample is positive when its score is strictly above the threshold)."""
    ordered = np.sort(neg)[::-1]
    k = int(np.floor(fpr * len(ordered) + 1e-9))  # negatives allowed above the threshold
    threshold = ordered[k] if k < len(ordered) else -np.inf
    return float(np.mean(pos > threshold)), float(np.mean(neg > threshold))


def _log_normal(x: np.ndarray, mu: np.ndarray, var: np.ndarray) -> np.ndarray:
    return -0.5 * (np.log(2 * np.pi * var) + (x - mu) ** 2 / var)


def ulira(unlearned: np.ndarray, oracle: np.ndarray, *, min_fit: int = MIN_FIT) -> ULiRAResult:
    """U-LiRA over two families' statistics, each ``(N models, n examples)`` (rows: members).

    Raises:
        ConfigError: shapes differ, fewer than 2 models, or non-finite values.
    """
    unlearned, oracle = np.asarray(unlearned, dtype=np.float64), np.asarray(oracle, dtype=np.float64)
    check_families(unlearned, oracle)
    n_models, n = unlearned.shape
    pos, neg = np.empty((n_models, n)), np.empty((n_models, n))
    for j in range(n_models):
        keep = np.arange(n_models) != j
        fit_u, fit_o = unlearned[keep], oracle[keep]
        mu_u, mu_o = fit_u.mean(0), fit_o.mean(0)
        k = fit_u.shape[0]
        if k >= min_fit:
            var_u, var_o = fit_u.var(0, ddof=1), fit_o.var(0, ddof=1)
        else:
            pooled = np.concatenate([fit_u - mu_u, fit_o - mu_o]).ravel()
            v = float(np.sum(pooled ** 2) / max(2 * n * (k - 1), 1)) if k >= 2 else 1.0
            var_u = var_o = np.full(n, v)
        var_u, var_o = np.maximum(var_u, 1e-6), np.maximum(var_o, 1e-6)
        score = lambda x: _log_normal(x, mu_u, var_u) - _log_normal(x, mu_o, var_o)  # noqa: E731
        pos[j], neg[j] = score(unlearned[j]), score(oracle[j])
    p, q = pos.ravel(), neg.ravel()
    truth = np.concatenate([np.ones_like(p), np.zeros_like(q)])
    auc = float(roc_auc_score(truth, np.concatenate([p, q]))) if np.ptp(np.concatenate([p, q])) > 0 else 0.5
    (t1, f1), (t01, f01) = (tpr_at_fpr(p, q, a) for a in FPRS)
    per_pos, per_neg = pos.mean(0), neg.mean(0)
    flagged = tpr_at_fpr(per_pos, per_neg, FPRS[0])[0]
    return ULiRAResult(100 * auc, 100 * t1, 100 * f1, 100 * t01, 100 * f01, 100 * flagged, n, n_models,
                       per_pos.astype(np.float32))
