"""U-LiRA on statistics drawn by construction: same distributions → AUC near 50; shifted → high."""
import numpy as np
import pytest

from unlearnkit.attacks.ulira import tpr_at_fpr, ulira
from unlearnkit.errors import ConfigError


def draws(n_models, n, shift=0.0, seed=0):
    rng = np.random.default_rng(seed)
    centre = rng.normal(0, 3, n)  # each example its own mean, shared by both families
    spread = rng.uniform(0.5, 2, n)
    u = centre + shift * spread + spread * rng.normal(size=(n_models, n))
    o = centre + spread * rng.normal(size=(n_models, n))
    return u, o


@pytest.mark.parametrize("n_models", [2, 3, 8])
def test_same_distribution_is_chance(n_models):
    r = ulira(*draws(n_models, 2000))
    assert abs(r.auc - 50) < 4
    assert r.flagged < 5 and r.fpr_at_1 <= 1.0 and r.fpr_at_01 <= 0.1


@pytest.mark.parametrize("n_models,auc,flagged", [(2, 75, 5), (8, 85, 30)])
def test_shifted_family_is_detected(n_models, auc, flagged):
    r = ulira(*draws(n_models, 1000, shift=2.0, seed=1))
    assert r.auc > auc and r.tpr_at_1 > 5 and r.flagged > flagged, r
    assert r.scores.shape == (1000,)


def test_tpr_at_fpr_reports_the_fpr_achieved():
    neg = np.arange(100.0)
    tpr, fpr = tpr_at_fpr(np.array([98.5, 99.5, 50.0]), neg, 0.01)  # threshold 98: only 99 is above it
    assert fpr == pytest.approx(0.01) and tpr == pytest.approx(2 / 3)
    tpr, fpr = tpr_at_fpr(np.array([200.0]), neg, 0.001)  # 0.1% of 100 negatives: none may pass
    assert fpr == 0 and tpr == 1


@pytest.mark.parametrize("u,o,match", [
    (np.zeros((1, 5)), np.zeros((1, 5)), "at least 2 models"),
    (np.zeros((3, 5)), np.zeros((2, 5)), "same number"),
    (np.full((2, 5), np.nan), np.zeros((2, 5)), "NaN"),
    (np.zeros(5), np.zeros(5), "models, examples"),
])
def test_bad_families_refused(u, o, match):
    with pytest.raises(ConfigError, match=match):
        ulira(u, o)
