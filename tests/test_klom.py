"""KLoM: margins as defined, zero for identical samples, at the floor for a second oracle family."""
import math

import numpy as np
import pytest
import torch

from unlearnkit.errors import ConfigError
from unlearnkit.metrics.klom import klom, klom_with_floor, margins, summary


def test_margin_is_the_logit_scaled_confidence():
    logits = torch.randn(50, 4, generator=torch.Generator().manual_seed(0))
    labels = torch.randint(0, 4, (50,), generator=torch.Generator().manual_seed(1))
    p = torch.softmax(logits.double(), 1).gather(1, labels[:, None]).squeeze(1)
    assert torch.allclose(margins(logits, labels).double(), torch.log(p / (1 - p)), atol=1e-5)
    assert margins(torch.tensor([[1e4, 0.0]]), torch.tensor([0]), clip=100).item() == 100


def test_identical_and_constant_samples_score_zero():
    a = np.random.default_rng(0).normal(size=(6, 30))
    assert np.allclose(klom(a, a), 0)
    assert np.allclose(klom(np.ones((4, 3)), np.ones((4, 3))), 0)


def test_another_oracle_family_sits_at_the_floor_and_a_shift_does_not():
    rng = np.random.default_rng(0)
    centre = rng.normal(0, 3, 3000)
    family = lambda shift=0.0: centre + shift + rng.normal(size=(8, 3000))  # noqa: E731
    oracle = family()
    same, floor = klom_with_floor(family(), oracle)
    shifted, _ = klom_with_floor(family(3.0), oracle)
    assert abs(same.mean() - floor.mean()) < 0.1 * floor.mean()  # seeds 0-4: within 0.1 of ~1.4
    assert shifted.mean() > 3 * floor.mean()
    s = summary(shifted, "klom.forget")
    assert s["klom.forget.mean"] <= s["klom.forget.p90"] <= s["klom.forget.p99"]
    assert math.isfinite(s["klom.forget.p99"])


@pytest.mark.parametrize("u,o,kw,match", [
    (np.zeros((2, 3)), np.zeros((2, 4)), {}, "same examples"),
    (np.zeros((2, 3)), np.full((2, 3), np.inf), {}, "NaN or inf"),
    (np.zeros((2, 3)), np.zeros((2, 3)), {"bins": 1}, "bins >= 2"),
])
def test_bad_input_refused(u, o, kw, match):
    with pytest.raises(ConfigError, match=match):
        klom(u, o, **kw)


def test_floor_needs_two_oracles():
    with pytest.raises(ConfigError, match=">= 2 oracles"):
        klom_with_floor(np.zeros((2, 3)), np.zeros((1, 3)))
