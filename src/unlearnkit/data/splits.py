"""Train/validation carving and the ForgetSplit every unlearning method receives."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..budget import TrainConfig
from ..errors import ConfigError
from ..utils.sampling import stratified_subset  # noqa: F401  (re-exported: its old home)
from .dataset import Dataset
from .pool import Samples


@dataclass(frozen=True, eq=False)
class BaseSplit:
    """The training file divided into training IDs and a held-out validation set D_v."""

    dataset: Dataset
    train: Samples
    val: Samples


def base_split(dataset: Dataset, *, val_fraction: float = 0.1, train_subset: int | None = None,
               test_subset: int | None = None, seed: int = 0, requested: Tensor | None = None
               ) -> tuple[BaseSplit, Samples]:
    """Carve a seeded, stratified validation set from the training file; return it and the test set.

    ``train_subset`` / ``test_subset`` keep a stratified subset of that many samples first (for
    tests and quick runs); sample IDs remain row numbers of the files either way.

    ``requested``: the IDs of an explicit deletion request (the ``ids`` scenario). They stay in
    training under every seed, so the request can always be honoured: a ``train_subset`` keeps
    them, and D_v is ``val_fraction`` of the *other* samples (less any class's last ones, which
    stay in training so that the request empties no class it does not empty itself). Without it (``random``, ``class``,
    ``adversarial:*``) D_v is ``val_fraction`` of the training file, drawn as always. IDs outside
    the file are ignored here; the request's validator refuses them.
    """
    if not 0 < val_fraction < 1:
        raise ConfigError(f"data.val_fraction must lie in (0, 1), got {val_fraction}")
    g = torch.Generator().manual_seed(seed)
    y = dataset.train.y
    universe = torch.arange(len(dataset.train))
    kept = None if requested is None else torch.unique(requested[(requested >= 0) & (requested < len(universe))])
    if train_subset is not None:
        if not 0 < train_subset <= len(universe):
            raise ConfigError(f"data.train_subset must lie in [1, {len(universe)}], got {train_subset}")
        if kept is None:
            universe = stratified_subset(y, universe, count=train_subset, generator=g)
        elif train_subset < len(kept):
            raise ConfigError(f"data.train_subset={train_subset} is smaller than the forget request "
                              f"({len(kept)} ids); keep at least that many")
        else:
            extra = train_subset - len(kept)
            others = stratified_subset(y, _without(universe, kept), count=extra, generator=g) if extra else kept[:0]
            universe = torch.sort(torch.cat([kept, others])).values
    test_ids = torch.arange(len(dataset.test))
    if test_subset is not None:
        if not 0 < test_subset <= len(test_ids):
            raise ConfigError(f"data.test_subset must lie in [1, {len(test_ids)}], got {test_subset}")
        test_ids = stratified_subset(dataset.test.y, test_ids, count=test_subset, generator=g)
    candidates = universe if kept is None else _without(universe, kept)
    val_ids = stratified_subset(y, candidates, val_fraction, generator=g) if len(candidates) else candidates
    if kept is not None:  # a class whose only unrequested samples D_v took keeps them in training
        val_ids = val_ids[torch.isin(y[val_ids], y[_without(candidates, val_ids)])]
    train_ids = _without(universe, val_ids)
    split = BaseSplit(dataset, Samples(dataset.train, train_ids), Samples(dataset.train, val_ids))
    return split, Samples(dataset.test, test_ids)


def _without(ids: Tensor, drop: Tensor) -> Tensor:
    return ids[~torch.isin(ids, drop)]


TRACE_SHARE = 0.01  # D_r keeping under 1% of a class D_f takes keeps only a trace of it (ForgetSplit.trace_classes)


@dataclass(frozen=True, eq=False)
class ForgetSplit:
    """What an unlearning method receives: D_r, D_f, D_v, D_test and the original training budget.

    ``retain`` ∪ ``forget`` is exactly the set the original model was trained on. ``forget_class``
    is set for class-wise forgetting. ``budget`` is the original model's TrainConfig, from which
    methods scale their epochs and learning rates.
    """

    retain: Samples
    forget: Samples
    val: Samples
    test: Samples
    num_classes: int
    budget: TrainConfig
    forget_class: int | None = None

    @property
    def train(self) -> Samples:
        return self.retain.union(self.forget)

    def trace_classes(self) -> list[int]:
        """Classes D_f takes of which D_r keeps only a trace: at most one sample, or under
        :data:`TRACE_SHARE` of the class's training samples. Class-wise: the forgotten class.

        The request-level checks refuse to empty a class an ID request does not name, so the
        ``class`` damage strategy leaves one sample of its class; a retrain on D_r cannot learn
        that class from it (the gold standard's UA on such requests is 100 on W1), so every method
        with a class-wise rule treats these classes as forgotten whole (:meth:`forgotten_classes`)."""
        kept = torch.bincount(self.retain.labels, minlength=self.num_classes)
        taken = torch.bincount(self.forget.labels, minlength=self.num_classes)
        trace = (taken > 0) & ((kept <= 1) | (kept < TRACE_SHARE * (kept + taken)))
        return torch.nonzero(trace).squeeze(1).tolist()

    def forgotten_classes(self, trace_as_absent: bool) -> list[int]:
        """The classes a method forgets whole on this split: the class a class-wise request names,
        and with ``trace_as_absent`` each class an ID request leaves only a trace of
        (:meth:`trace_classes`). The one home of that choice for every method with a class-wise rule
        (their ``trace_as_absent``; base.acts_class_wise)."""
        if trace_as_absent:
            return self.trace_classes()
        return [self.forget_class] if self.forget_class is not None else []


def forget_split(base: BaseSplit, test: Samples, forget_ids: Tensor, budget: TrainConfig,
                 forget_class: int | None = None) -> ForgetSplit:
    """Divide ``base.train`` into D_f = ``forget_ids`` and D_r = the rest (IDs already validated)."""
    keep = ~torch.isin(base.train.ids, forget_ids)
    return ForgetSplit(
        retain=base.train.take(keep),
        forget=Samples(base.dataset.train, torch.sort(forget_ids).values),
        val=base.val,
        test=test,
        num_classes=base.dataset.num_classes,
        budget=budget,
        forget_class=forget_class,
    )
