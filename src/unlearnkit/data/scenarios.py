"""Forget scenarios: which training IDs a deletion request names, and the checks every request passes.

Scenarios live in a registry; each takes the training samples and a :class:`ForgetRequest` and
returns IDs. Every request, whatever its scenario, goes through :func:`validate_forget_ids` before
any model is touched.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from ..errors import ConfigError, ForgetRequestError
from ..registry import Registry
from ..utils.sampling import stratified_subset
from .pool import Samples
from .requests import validate_request

ScenarioFn = Callable[[Samples, "ForgetRequest", torch.Generator], Tensor]
SCENARIOS: Registry[ScenarioFn] = Registry("scenario")
register_scenario = SCENARIOS.register


@dataclass(frozen=True, kw_only=True)
class ForgetRequest:
    """``scenario``: ``random`` (``fraction`` or ``count`` of the training set, stratified),
    ``class`` (every training sample of ``forget_class``) or ``ids`` (the IDs in ``ids_file``)."""

    scenario: str = "random"
    fraction: float = 0.1
    count: int | None = None
    forget_class: int | None = None
    ids_file: str | None = None

    @property
    def class_wise(self) -> bool:
        """Whether the request forgets a whole class (methods may act differently: their ``class_*`` knobs)."""
        return self.scenario == "class"

    def __post_init__(self) -> None:
        if not 0 < self.fraction < 1:
            raise ConfigError(f"forget.fraction must lie in (0, 1), got {self.fraction}")
        if self.count is not None and self.count < 1:
            raise ConfigError(f"forget.count must be >= 1, got {self.count}")
        if self.forget_class is not None and self.scenario != "class" and not self.scenario.startswith("adversarial:"):
            raise ConfigError(f"forget.forget_class={self.forget_class} applies to the class scenario, not "
                              f"{self.scenario!r}; use --scenario class (or leave the class out)")


def validate_forget_ids(ids: Tensor, train: Samples, pool_size: int, *, named_class: int | None = None) -> Tensor:
    """Check a deletion request against the training set; return the IDs as a sorted int64 tensor.

    Refused (by :func:`~unlearnkit.data.requests.validate_request`): non-integer IDs, an empty
    request, IDs outside ``[0, pool_size)``, duplicates, IDs not in the training set (e.g.
    validation samples), the whole training set, and a request that removes every sample of a
    class other than ``named_class``.

    Raises:
        ForgetRequestError: naming the first offending IDs.
    """
    return validate_request(ids, train.ids, pool_size=pool_size, labels=train.labels, named_class=named_class)


def read_ids_file(path: str | Path) -> Tensor:
    """Read IDs from ``.npy``, ``.json`` (a list) or text (integers separated by spaces, commas or
    newlines; ``#`` starts a comment)."""
    path = Path(path)
    if not path.is_file():
        raise ForgetRequestError(f"forget ids file not found: {path}")
    try:
        if path.suffix == ".npy":
            arr = np.load(path, allow_pickle=False)
            if not np.issubdtype(arr.dtype, np.integer):
                raise ForgetRequestError(f"{path}: ids must be integers, got {arr.dtype}")
            return torch.from_numpy(arr.astype(np.int64).ravel())
        text = path.read_text()
        if path.suffix == ".json":
            values = json.loads(text)
            if not isinstance(values, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
                raise ForgetRequestError(f"{path}: expected a JSON list of integers")
            return torch.tensor(_in_int64(values, path), dtype=torch.int64)
    except (OSError, ValueError) as e:
        raise ForgetRequestError(f"cannot read forget ids file {path}: {e}") from e
    values = []
    for lineno, line in enumerate(text.splitlines(), 1):
        for token in line.split("#", 1)[0].replace(",", " ").split():
            try:
                values.append(int(token))
            except ValueError:
                raise ForgetRequestError(f"{path}:{lineno}: {token!r} is not an integer id") from None
    return torch.tensor(_in_int64(values, path), dtype=torch.int64)


def _in_int64(values: list[int], path: Path) -> list[int]:
    """``values``, refusing IDs too large for any training file (they would overflow int64)."""
    huge = [v for v in values if abs(v) >= 2**63]
    if huge:
        raise ForgetRequestError(f"{path}: forget ids out of range: {huge[:5]} (ids are row numbers of the training file)")
    return values


@register_scenario("random")
def random_scenario(train: Samples, request: ForgetRequest, generator: torch.Generator) -> Tensor:
    """A uniformly random, class-stratified ``fraction`` (or ``count``) of the training set."""
    if request.count is not None and request.count >= len(train):
        raise ForgetRequestError(f"forget.count={request.count} is not below the training set size {len(train)}")
    return stratified_subset(train.pool.y, train.ids, request.fraction, count=request.count, generator=generator)


@register_scenario("class")
def class_scenario(train: Samples, request: ForgetRequest, generator: torch.Generator) -> Tensor:
    """Every training sample of ``forget_class``."""
    present = torch.unique(train.labels).tolist()
    if request.forget_class is None:
        raise ForgetRequestError(f"the class scenario needs forget.forget_class (one of {present})")
    if request.forget_class not in present:
        raise ForgetRequestError(f"class {request.forget_class} does not exist in the training set (classes: {present})")
    return train.ids[train.labels == request.forget_class]


@register_scenario("ids")
def ids_scenario(train: Samples, request: ForgetRequest, generator: torch.Generator) -> Tensor:
    """The IDs listed in ``ids_file``."""
    if request.ids_file is None:
        raise ForgetRequestError("the ids scenario needs forget.ids_file")
    return read_ids_file(request.ids_file)


def select_forget_ids(train: Samples, request: ForgetRequest, *, generator: torch.Generator) -> Tensor:
    """Run the request's scenario and validate what it names (an ``ids`` file's refusal names the file)."""
    ids = SCENARIOS.get(request.scenario)(train, request, generator)
    named = request.forget_class if request.scenario == "class" else None
    try:
        return validate_forget_ids(ids, train, len(train.pool), named_class=named)
    except ForgetRequestError as e:
        if request.scenario != "ids":
            raise
        raise ForgetRequestError(f"{request.ids_file}: {e}") from e


def list_scenarios(pattern: str = "*") -> list[str]:
    return SCENARIOS.names(pattern)
