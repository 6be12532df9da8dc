"""Attacks and metrics on synthetic outputs whose answer is known."""
from __future__ import annotations

import math

import pytest
import torch

from unlearnkit.attacks import SVCConfidenceAttack, ThresholdAttack, create_attack, list_attacks, mia_efficacy
from unlearnkit.attacks.metric_attacks import best_threshold, neg_modified_entropy
from unlearnkit.metrics import audit, avg_disparity, mean_ci


def outputs_with_confidence(conf: torch.Tensor, num_classes: int = 4, labels=None):
    """Softmax rows whose true-class probability is ``conf`` (the rest spread evenly)."""
    n = len(conf)
    labels = torch.arange(n) % num_classes if labels is None else labels
    probs = ((1 - conf) / (num_classes - 1))[:, None].repeat(1, num_classes)
    probs[torch.arange(n), labels] = conf
    return probs, labels


def test_mia_efficacy_known_answers():
    g = torch.Generator().manual_seed(0)
    members = outputs_with_confidence(0.95 + 0.05 * torch.rand(400, generator=g))
    test = outputs_with_confidence(0.3 + 0.3 * torch.rand(200, generator=g))
    looks_unseen = outputs_with_confidence(0.3 + 0.3 * torch.rand(100, generator=g))
    looks_member = outputs_with_confidence(0.96 + 0.04 * torch.rand(100, generator=g))
    assert mia_efficacy(members, test, looks_unseen) == pytest.approx(100.0)
    assert mia_efficacy(members, test, looks_member) == pytest.approx(0.0)
    half = (torch.cat([looks_unseen[0][:50], looks_member[0][:50]]), torch.cat([looks_unseen[1][:50], looks_member[1][:50]]))
    assert mia_efficacy(members, test, half) == pytest.approx(50.0)


def test_mia_efficacy_uses_first_test_sized_block_of_retain():
    # retain beyond the first |test| samples looks like non-members: it must be ignored
    members = outputs_with_confidence(torch.cat([torch.full((100,), 0.99), torch.full((300,), 0.4)]))
    test = outputs_with_confidence(torch.full((100,), 0.4))
    forget = outputs_with_confidence(torch.full((50,), 0.4))
    assert mia_efficacy(members, test, forget) == pytest.approx(100.0)


def test_mia_efficacy_fits_equal_members_and_non_members_when_retain_is_smaller():
    # test beyond the first |D_r| samples looks like members: with it, non-members would outnumber
    # members where the two overlap and the SVC would call everything there non-member
    members = outputs_with_confidence(torch.full((100,), 0.99))
    test = outputs_with_confidence(torch.cat([torch.full((100,), 0.4), torch.full((300,), 0.99)]))
    forget = outputs_with_confidence(torch.full((50,), 0.99))
    assert mia_efficacy(members, test, forget) == pytest.approx(0.0)


def test_mia_efficacy_does_not_collapse_when_test_outnumbers_overlapping_retain():
    # W2's case in miniature: members and 80% of the non-members equally confident, non-members
    # more numerous. An unbalanced fit calls every sample non-member (MIA-Efficacy 100 for a model
    # that forgot nothing); the balanced fit still calls samples like D_r members.
    g = torch.Generator().manual_seed(0)
    members = outputs_with_confidence(0.9 + 0.1 * torch.rand(300, generator=g))
    test = outputs_with_confidence(torch.cat([0.9 + 0.1 * torch.rand(320, generator=g),
                                              0.3 + 0.3 * torch.rand(80, generator=g)])[torch.randperm(400, generator=g)])
    unforgotten = outputs_with_confidence(0.9 + 0.1 * torch.rand(100, generator=g))
    unbalanced = SVCConfidenceAttack().fit_outputs(members, test)
    assert (~unbalanced.predict_outputs(unforgotten)).all()  # the failure the balanced fit avoids
    assert mia_efficacy(members, test, unforgotten) < 50.0


def test_modified_entropy_matches_song_mittal():
    p = torch.tensor([[0.7, 0.2, 0.1]])
    y = torch.tensor([0])
    expected = -(0.3 * math.log(0.7)) - (0.2 * math.log(0.8) + 0.1 * math.log(0.9))
    assert neg_modified_entropy(p, y).item() == pytest.approx(-expected)
    # a wrong confident prediction has high Mentr (low statistic)
    assert neg_modified_entropy(torch.tensor([[0.01, 0.99, 0.0]]), y) < neg_modified_entropy(p, y)


def test_best_threshold_and_per_class_thresholds():
    assert best_threshold(torch.tensor([0.8, 0.9, 1.0]), torch.tensor([0.1, 0.2, 0.5])) == pytest.approx(0.8)
    # class 0 separates at 0.9, class 1 at 0.5
    m = outputs_with_confidence(torch.tensor([0.95, 0.6, 0.95, 0.6]), 2, torch.tensor([0, 1, 0, 1]))
    n = outputs_with_confidence(torch.tensor([0.85, 0.4, 0.85, 0.4]), 2, torch.tensor([0, 1, 0, 1]))
    attack = ThresholdAttack(statistic="confidence").fit_outputs(m, n)
    assert attack.thresholds[0] == pytest.approx(0.95) and attack.thresholds[1] == pytest.approx(0.6)
    assert attack.predict_outputs(m).all() and not attack.predict_outputs(n).any()


def test_attack_registry_and_model_level_protocol(toy_original, toy_random_split):
    assert {"svc", "correctness", "confidence", "entropy", "m_entropy"} <= set(list_attacks())
    s = toy_random_split
    for name in list_attacks():
        attack = create_attack(name).fit(toy_original, s.retain.take(slice(0, 200)), s.test.take(slice(0, 200)))
        assert attack.score(toy_original, s.forget).shape == (len(s.forget),)
    with pytest.raises(ValueError):
        ThresholdAttack(statistic="loss")
    with pytest.raises(RuntimeError):
        SVCConfidenceAttack().score_outputs(outputs_with_confidence(torch.ones(2)))


def test_audit_figures_are_consistent(toy_original, toy_class_split):
    r = audit(toy_original, toy_class_split)
    assert set(r) >= {"UA", "MIA-Efficacy", "RA", "TA", "VA", "attack.m_entropy.bacc", "attack.confidence.auc"}
    assert all(0 <= v <= 100 for v in r.values())
    assert avg_disparity(r, r) == 0.0
    shifted = {**r, "UA": r["UA"] + 4, "TA": r["TA"] - 4}
    assert avg_disparity(shifted, r) == pytest.approx(2.0)


def test_mean_ci_student_t():
    m, ci = mean_ci([1.0, 2.0, 3.0])
    assert m == 2.0 and ci == pytest.approx(4.302652729911275 * 1.0 / math.sqrt(3))
    assert math.isnan(mean_ci([5.0])[1]) and mean_ci([5.0])[0] == 5.0


def test_validation_audit_never_reads_the_test_set(toy_original, toy_class_split):
    import dataclasses

    from unlearnkit.metrics import VALIDATION_HEADLINE, validation_audit

    r = validation_audit(toy_original, toy_class_split)
    assert tuple(r) == VALIDATION_HEADLINE
    poisoned = dataclasses.replace(toy_class_split, test=None)  # any use of D_test would fail
    assert validation_audit(toy_original, poisoned) == r
    full = audit(toy_original, toy_class_split)
    assert r["UA"] == full["UA"] and r["RA"] == full["RA"] and r["VA"] == full["VA"]
    assert avg_disparity(r, {**r, "VA": r["VA"] + 8}, keys=VALIDATION_HEADLINE) == pytest.approx(2.0)
