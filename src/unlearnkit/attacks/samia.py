"""SAMIA: the transformer membership-inference attack of Yuan & Zhang (2022), DAU's attacker.

Per sample the attack reads three vectors of length C: the softmax prediction ``p``, the noise
sensitivity ``s`` and the one-hot label ``y`` (``papers/FACTS.md`` §1):

- ``s = mean_k |softmax(f(x + ε u_k)) − softmax(f(x))| / ε`` per class, ``m = 10`` copies,
  ``u_k ~ N(0, I)``, ``ε = 1e-3``; the noise is drawn from a passed generator, and the copies go
  through the model as one batch. Computed with autograd on, ``s`` is differentiable in the model's
  weights (DAU's defender backpropagates through it).
- Network: BatchNorm1d(3C) → C tokens ``[p_c, s_c, y_c]`` → Linear(3→64) + GELU → a 3-layer
  TransformerEncoder (4 heads, d_model 64, feed-forward 128, dropout 0.2, GELU) → flatten →
  Linear(64·C→64) → ReLU → Linear(64→2); logit 1 is "member".

:class:`SamiaAttack` is the MembershipAttack (``fit`` / ``score``); :func:`samia_audit` fits it on
an audited model's known members (D_r) vs non-members (half of D_test) and reports balanced
accuracy and AUC on D_f vs the other half of D_test, the protocol of the metric attacks.
Choices where the source is silent: balanced batches (half members, half non-members, drawn with
the generator) so unequal set sizes do not bias the attack; Adam (lr 1e-3) by default because an
audit runs a few hundred steps, not their SGD schedule (``optimizer="sgd"`` gives theirs: lr 1e-3,
momentum 0.9, weight decay 5e-4); at most ``max_samples`` per side, drawn at random, to bound cost.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score
from torch import Tensor, nn

from ..data.pool import Samples
from ..utils.sampling import random_positions
from .base import register_attack, shadow_positions

COPIES, EPS = 10, 1e-3


def sensitivity(model: nn.Module, x: Tensor, probs: Tensor, *, generator: torch.Generator,
                copies: int = COPIES, eps: float = EPS) -> Tensor:
    """``mean_k |softmax(model(x + eps·u_k)) − probs| / eps``, ``[B, C]``; ``probs = softmax(model(x))``.

    Differentiable when autograd is on; the model's mode (train/eval) is the caller's choice.
    """
    noise = torch.randn((copies, *x.shape), generator=generator, dtype=x.dtype).to(x.device)
    noisy = (x.unsqueeze(0) + eps * noise).reshape(copies * x.shape[0], *x.shape[1:])
    moved = torch.softmax(model(noisy), dim=1).reshape(copies, *probs.shape)
    return (moved - probs.unsqueeze(0)).abs().mean(dim=0) / eps


def attack_inputs(probs: Tensor, sens: Tensor, labels: Tensor) -> Tensor:
    """The attacker's input ``[p, s, one_hot(y)]``, ``[B, 3C]``."""
    return torch.cat([probs, sens, F.one_hot(labels, probs.shape[1]).to(probs.dtype)], dim=1)


@torch.no_grad()
def inputs_of(model: nn.Module, samples: Samples, *, generator: torch.Generator, copies: int = COPIES,
              eps: float = EPS, batch_size: int = 256) -> Tensor:
    """Attack inputs of every sample of ``samples`` under ``model`` in eval mode (mode restored)."""
    was_training = model.training
    device = next(model.parameters()).device
    model.eval()
    out = []
    for x, y in samples.batches(batch_size, device=device):
        p = torch.softmax(model(x), dim=1)
        out.append(attack_inputs(p, sensitivity(model, x, p, generator=generator, copies=copies, eps=eps), y))
    model.train(was_training)
    return torch.cat(out) if out else torch.empty(0, 0)


class SamiaNet(nn.Module):
    """The attack network; ``forward([B, 3C]) -> [B, 2]`` logits (non-member, member)."""

    def __init__(self, num_classes: int, *, d_model: int = 64, heads: int = 4, layers: int = 3,
                 feedforward: int = 128, dropout: float = 0.2) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.norm = nn.BatchNorm1d(3 * num_classes)
        self.embed = nn.Sequential(nn.Linear(3, d_model), nn.GELU())
        layer = nn.TransformerEncoderLayer(d_model, heads, feedforward, dropout, activation="gelu", batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(d_model * num_classes, 64), nn.ReLU(), nn.Linear(64, 2))

    def forward(self, inputs: Tensor) -> Tensor:
        tokens = self.norm(inputs).view(-1, 3, self.num_classes).transpose(1, 2)  # [B, C, (p_c, s_c, y_c)]
        return self.head(self.encoder(self.embed(tokens)))


def balanced_batch(members: Tensor, nonmembers: Tensor, batch_size: int, generator: torch.Generator
                   ) -> tuple[Tensor, Tensor]:
    """``batch_size // 2`` random rows of each side (fewer if a side is smaller), without replacement."""
    half = max(1, min(batch_size // 2, len(members), len(nonmembers)))
    m = members[random_positions(len(members), half, generator).to(members.device)]
    n = nonmembers[random_positions(len(nonmembers), half, generator).to(nonmembers.device)]
    return m, n


def attacker_step(net: SamiaNet, optimizer: torch.optim.Optimizer, members: Tensor, nonmembers: Tensor) -> Tensor:
    """One maximum-likelihood step of the attacker on (detached) member / non-member inputs."""
    inputs = torch.cat([members, nonmembers]).detach()
    labels = torch.cat([torch.ones(len(members)), torch.zeros(len(nonmembers))]).long().to(inputs.device)
    net.train()
    loss = F.cross_entropy(net(inputs), labels)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach()


def make_attacker_optimizer(net: nn.Module, name: str, lr: float) -> torch.optim.Optimizer:
    if name == "adam":
        return torch.optim.Adam(net.parameters(), lr=lr)
    return torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)


@register_attack("samia")
@dataclass
class SamiaAttack:
    """The SAMIA attacker as a MembershipAttack: ``fit`` trains a fresh network on the model's
    outputs for members vs non-members; ``score`` is its member-minus-non-member logit."""

    steps: int = 400
    batch_size: int = 128
    lr: float = 1e-3
    optimizer: str = "adam"
    copies: int = COPIES
    eps: float = EPS
    max_samples: int | None = 2000
    seed: int = 0
    net: SamiaNet | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.optimizer not in ("adam", "sgd"):
            raise ValueError(f"samia.optimizer must be 'adam' or 'sgd', got {self.optimizer!r}")
        if not (self.steps >= 1 and self.batch_size >= 2 and self.lr > 0 and self.copies >= 1 and self.eps > 0):
            raise ValueError(f"samia: steps >= 1, batch_size >= 2, lr > 0, copies >= 1, eps > 0 required; got {self}")

    def _inputs(self, model: nn.Module, samples: Samples, generator: torch.Generator) -> Tensor:
        return inputs_of(model, samples, generator=generator, copies=self.copies, eps=self.eps)

    def fit(self, model: nn.Module, members: Samples, nonmembers: Samples) -> "SamiaAttack":
        if len(members) == 0 or len(nonmembers) == 0:
            raise ValueError("the SAMIA attack needs members and non-members to fit")
        g = torch.Generator().manual_seed(self.seed)
        im = self._inputs(model, members.capped(self.max_samples, generator=g), g)
        inn = self._inputs(model, nonmembers.capped(self.max_samples, generator=g), g)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            net = SamiaNet(im.shape[1] // 3).to(im.device)
            optimizer = make_attacker_optimizer(net, self.optimizer, self.lr)
            for _ in range(self.steps):
                attacker_step(net, optimizer, *balanced_batch(im, inn, self.batch_size, g))
        self.net = net.eval()
        return self

    @torch.no_grad()
    def score_inputs(self, inputs: Tensor) -> Tensor:
        if self.net is None:
            raise RuntimeError("fit the attack before scoring")
        logits = self.net.eval()(inputs)
        return (logits[:, 1] - logits[:, 0]).cpu()

    def score(self, model: nn.Module, data: Samples) -> Tensor:
        g = torch.Generator().manual_seed(self.seed + 1)
        return self.score_inputs(self._inputs(model, data, g))


def samia_audit(model: nn.Module, split, *, seed: int = 0, max_target: int | None = 2000, **params) -> dict[str, float]:
    """Balanced accuracy and AUC (percent) of SAMIA on D_f (members) vs half of D_test.

    Fitted on the model's own outputs for ``|D_test|/2`` random D_r samples (members) vs the other
    half of D_test (non-members), as the metric attacks of ``metrics.audit`` (at most
    ``SamiaAttack.max_samples`` per side); evaluated on at most ``max_target`` random samples of
    each of D_f and the held-out half. Keys ``attack.samia.bacc`` and ``attack.samia.auc``;
    ``params`` go to :class:`SamiaAttack`.
    """
    g = torch.Generator().manual_seed(seed)
    out_pos, target_pos, in_pos = shadow_positions(len(split.test), len(split.retain), g)
    shadow_out, target_out, shadow_in = split.test.take(out_pos), split.test.take(target_pos), split.retain.take(in_pos)
    attack = SamiaAttack(seed=seed, **params).fit(model, shadow_in, shadow_out)
    sf = attack.score(model, split.forget.capped(max_target, generator=g))
    sn = attack.score(model, target_out.capped(max_target, generator=g))
    tpr, tnr = (sf >= 0).double().mean().item(), (sn < 0).double().mean().item()
    truth = torch.cat([torch.ones(len(sf)), torch.zeros(len(sn))]).numpy()
    auc = float(roc_auc_score(truth, torch.cat([sf, sn]).numpy()))
    return {"attack.samia.bacc": 100.0 * (tpr + tnr) / 2, "attack.samia.auc": 100.0 * auc}
