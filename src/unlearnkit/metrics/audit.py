"""The audit of an unlearned model: UA, RA, TA, MIA-Efficacy and Song & Mittal's metric attacks.

Each of D_r, D_f, D_test and D_v goes through the model once; every figure is derived from those
outputs. Definitions follow ``papers/FACTS.md`` §3–5:
UA = 100 − acc(D_f); RA = acc(D_r); TA = acc(D_test); VA = acc(D_v);
MIA-Efficacy = SVC confidence attack (shadow: the first n of D_r vs the first n of D_test,
n = min(|D_r|, |D_test|); see attacks/svc_mia.py), share of D_f called non-member;
metric attacks: shadow = (|D_test|/2 samples of D_r, half of D_test), target = (D_f, the other
half of D_test), reported as balanced accuracy and AUC in percent.
"""
from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from torch import Tensor, nn

from ..attacks.base import outputs, shadow_positions
from ..attacks.metric_attacks import STATISTICS, ThresholdAttack
from ..attacks.svc_mia import mia_efficacy
from ..data.splits import ForgetSplit
from ..errors import TrainingError
from ..training.evaluate import accuracy

HEADLINE = ("UA", "MIA-Efficacy", "RA", "TA")
# The audit protocol a record was measured with (records before version 2 carry none). Version 2
# (2026-11-25) fits MIA-Efficacy's SVC on equal numbers of members and non-members; it changes
# nothing where |D_r| >= |D_test| (W1, CIFAR) and every MIA-Efficacy where D_r is the smaller (W2).
AUDIT_VERSION = 2


def audit_version(record: dict, n_test: int | None = None) -> int:
    """The audit protocol ``record`` was measured with, as a measurement: 1 for records from before
    versioning, except where versions 1 and 2 measure the same thing.

    They differ only in the SVC's fit: version 1 took the first |D_test| of D_r (all of D_r if it
    is smaller) against all of D_test, version 2 the first n = min(|D_r|, |D_test|) of each. Where
    |D_r| >= |D_test| (W1) both fit the same samples, so a version-1 record counts as version 2.
    ``n_test`` is |D_test| of the record's experiment; records since then carry it themselves.
    """
    version = record.get("audit", 1)
    n_test = record.get("n_test", n_test)
    if version == 1 and n_test is not None and record.get("n_retain", -1) >= n_test:
        return 2
    return version


Outputs = tuple[Tensor, Tensor]


def _take(out: Outputs, idx: Tensor) -> Outputs:
    return out[0][idx], out[1][idx]


def metric_attack_scores(retain: Outputs, test: Outputs, forget: Outputs, *, seed: int = 0) -> dict[str, float]:
    """Balanced accuracy and AUC (percent) of the four metric attacks on (D_f vs half of D_test)."""
    g = torch.Generator().manual_seed(seed)
    out_pos, target_pos, in_pos = shadow_positions(len(test[1]), len(retain[1]), g)
    shadow_out, target_out, shadow_in = _take(test, out_pos), _take(test, target_pos), _take(retain, in_pos)
    result: dict[str, float] = {}
    for name in STATISTICS:
        attack = ThresholdAttack(statistic=name).fit_outputs(shadow_in, shadow_out)
        tpr = attack.predict_outputs(forget).double().mean().item()
        tnr = (~attack.predict_outputs(target_out)).double().mean().item()
        scores = torch.cat([attack.score_outputs(forget), attack.score_outputs(target_out)]).numpy()
        truth = torch.cat([torch.ones(len(forget[1])), torch.zeros(len(target_out[1]))]).numpy()
        result[f"attack.{name}.bacc"] = 100.0 * (tpr + tnr) / 2
        result[f"attack.{name}.auc"] = 100.0 * float(roc_auc_score(truth, scores))
    return result


def audit(model: nn.Module, split: ForgetSplit, *, attacks: bool = True) -> dict[str, float]:
    """Every figure of the paper tables for ``model`` on ``split``, as a flat dict (percent).

    Keys: ``UA``, ``MIA-Efficacy``, ``RA``, ``TA``, ``VA`` and, with ``attacks``,
    ``attack.<statistic>.bacc`` / ``.auc`` for correctness, confidence, entropy, m_entropy.
    """
    return audit_with_outputs(model, split, attacks=attacks)[0]


def finite(outs: dict[str, Outputs]) -> dict[str, Outputs]:
    """``outs``, or a TrainingError when a model with finite weights gives non-finite outputs (its
    activations overflow): the run records a failed row instead of the attack's fitting crashing."""
    bad = [name for name, (probs, _) in outs.items() if not torch.isfinite(probs).all()]
    if bad:
        raise TrainingError(f"the model's outputs are not finite on {', '.join(bad)} (its weights are finite but its "
                            "activations overflow); lower the method's strength (learning rate, alpha, step)")
    return outs


def audit_with_outputs(model: nn.Module, split: ForgetSplit, *, attacks: bool = True
                       ) -> tuple[dict[str, float], dict[str, Outputs]]:
    """:func:`audit`, plus the ``(probabilities, labels)`` of retain / forget / test / val it used."""
    outs = finite({name: outputs(model, s) for name, s in
                   (("retain", split.retain), ("forget", split.forget), ("test", split.test), ("val", split.val))})
    acc = lambda name: accuracy(*outs[name])  # noqa: E731  (probabilities rank like logits)
    result = {
        "UA": 100.0 - acc("forget"),
        "MIA-Efficacy": mia_efficacy(outs["retain"], outs["test"], outs["forget"]),
        "RA": acc("retain"),
        "TA": acc("test"),
        "VA": acc("val"),
    }
    if attacks:
        result.update(metric_attack_scores(outs["retain"], outs["test"], outs["forget"]))
    return result, outs


VALIDATION_HEADLINE = ("UA", "MIA-Efficacy(val)", "RA", "VA")


def validation_audit(model: nn.Module, split: ForgetSplit) -> dict[str, float]:
    """The audit used to *tune* hyperparameters, which must never look at D_test.

    UA, RA and VA as in :func:`audit`; ``MIA-Efficacy(val)`` is the SVC confidence attack with D_v in
    the place of D_test (members: the first |D_v| of D_r; non-members: D_v), applied to D_f.
    Compare it with the retrain oracle's figures through ``avg_disparity(..., keys=VALIDATION_HEADLINE)``.
    """
    outs = finite({name: outputs(model, s) for name, s in
                   (("retain", split.retain), ("forget", split.forget), ("val", split.val))})
    return {
        "UA": 100.0 - accuracy(*outs["forget"]),
        "MIA-Efficacy(val)": mia_efficacy(outs["retain"], outs["val"], outs["forget"]),
        "RA": accuracy(*outs["retain"]),
        "VA": accuracy(*outs["val"]),
    }


def per_sample_values(outs: dict[str, Outputs], split: ForgetSplit) -> dict[str, "np.ndarray"]:
    """What a record keeps per sample: IDs, true-class confidence and correctness on D_f and D_test."""
    result = {}
    for name, samples in (("forget", split.forget), ("test", split.test)):
        probs, labels = outs[name]
        result[f"{name}_ids"] = samples.ids.numpy()
        result[f"{name}_confidence"] = probs.gather(1, labels[:, None]).squeeze(1).float().numpy()
        result[f"{name}_correct"] = (probs.argmax(1) == labels).numpy()
    return result


def avg_disparity(metrics: dict[str, float], reference: dict[str, float], *,
                  keys: tuple[str, ...] = HEADLINE) -> float:
    """Mean of |x − x_retrain| over UA, MIA-Efficacy, RA and TA (Jia et al.; DAU), or over ``keys``."""
    return sum(abs(metrics[k] - reference[k]) for k in keys) / len(keys)
