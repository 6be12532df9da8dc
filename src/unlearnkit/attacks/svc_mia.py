"""MIA-Efficacy: the SVC confidence attack of Jia et al. (2023), reused by SalUn and DAU.

Feature: the true-class softmax confidence p_y (model in eval mode, no augmentation). An
``SVC(C=3, gamma="auto", kernel="rbf")`` is trained on members = the first n samples of D_r
(label 1) against non-members = the first n samples of D_test (label 0), n = min(|D_r|, |D_test|),
then applied to D_f. MIA-Efficacy is the share of D_f predicted non-member, in percent; its target
is the retrained model's value, not 100.

Where D_r is the larger set (CIFAR, W1) this is the reference's "first |D_test| of D_r against
D_test". Where D_r is the smaller (W2: 8,100 against 10,000), fitting all of D_r against all of
D_test gives the non-members the majority, and once a model's confidences on the two overlap the
SVC calls *every* sample non-member, D_r included: MIA-Efficacy 100 that says nothing about
forgetting (``benchmarks/check_svc_mia.py``). Equal classes keep the attack an attack.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from sklearn.svm import SVC
from torch import Tensor

from .base import OutputAttack, register_attack
from .metric_attacks import confidence

Outputs = tuple[Tensor, Tensor]


@register_attack("svc")
@dataclass
class SVCConfidenceAttack(OutputAttack):
    C: float = 3.0
    gamma: str | float = "auto"
    kernel: str = "rbf"
    clf: SVC | None = field(default=None, init=False, repr=False)

    def fit_outputs(self, members: Outputs, nonmembers: Outputs) -> "SVCConfidenceAttack":
        xm, xn = confidence(*members).numpy(), confidence(*nonmembers).numpy()
        if len(xm) == 0 or len(xn) == 0:
            raise ValueError("the SVC attack needs members and non-members to fit")
        x = np.concatenate([xm, xn])[:, None]
        y = np.concatenate([np.ones(len(xm)), np.zeros(len(xn))])
        self.clf = SVC(C=self.C, gamma=self.gamma, kernel=self.kernel).fit(x, y)
        return self

    def score_outputs(self, out: Outputs) -> Tensor:
        if self.clf is None:
            raise RuntimeError("fit the attack before scoring")
        return torch.from_numpy(self.clf.decision_function(confidence(*out).numpy()[:, None]))

    def predict_outputs(self, out: Outputs) -> Tensor:
        if self.clf is None:
            raise RuntimeError("fit the attack before predicting")
        return torch.from_numpy(self.clf.predict(confidence(*out).numpy()[:, None]) == 1)


def mia_efficacy(retain: Outputs, test: Outputs, forget: Outputs) -> float:
    """MIA-Efficacy in percent from precomputed outputs ``(probs, labels)`` of D_r, D_test, D_f.

    ``retain`` and ``test`` must be in ID order: the first n = min(|D_r|, |D_test|) samples of each
    are the shadow members and non-members, equal in number.
    """
    n = min(len(retain[1]), len(test[1]))
    attack = SVCConfidenceAttack().fit_outputs((retain[0][:n], retain[1][:n]), (test[0][:n], test[1][:n]))
    return 100.0 * (~attack.predict_outputs(forget)).double().mean().item()
