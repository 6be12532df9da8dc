"""Where independent jobs run: in this process (``local``) or as Ray tasks (``ray``).

A backend maps a plain function ``fn(common, item)`` over items and yields ``(index, result)`` as
results arrive. That is all unlearnkit asks of it: the runs of a grid and the shards of a SISA
training are such jobs. Workers compute and return; the caller (the driver) writes every record and
checkpoint, so a worker that dies mid-job loses nothing: Ray runs the task again (``max_retries``)
and the driver writes each result once.

``ray`` is a thin layer over Ray (``pip install 'unlearnkit[ray]'``): it connects to the cluster at
``address`` (or ``$RAY_ADDRESS``) or starts a local one, puts ``common`` (e.g. the dataset) in the
object store once, submits one task per item and hands results back in completion order. Inside a
task the backend is "current" again (:func:`current_backend`), so a SISA run inside a grid task
sends its shards to the same cluster as nested tasks (a task blocked waiting for them gives its CPU
back to Ray).

Numbers agree bit for bit across backends when every job runs with the same number of torch
threads: a Ray task uses ``threads_per_task`` (default 1) threads, so run the local backend with
``OMP_NUM_THREADS=1`` (or ``torch.set_num_threads(1)``) to compare; with other thread counts the
float reductions are ordered differently and figures agree only up to rounding.
"""
from __future__ import annotations

import contextlib
import contextvars
import logging
from typing import Any, Callable, Iterable, Iterator, Protocol

import torch

from .errors import BackendError, ConfigError

log = logging.getLogger("unlearnkit")
Job = Callable[[Any, Any], Any]


class Backend(Protocol):
    name: str

    def map(self, fn: Job, items: Iterable[Any], *, common: Any = None) -> Iterator[tuple[int, Any]]: ...

    def close(self) -> None: ...


class LocalBackend:
    """Runs every job in this process, in order."""

    name = "local"

    def map(self, fn: Job, items: Iterable[Any], *, common: Any = None) -> Iterator[tuple[int, Any]]:
        for i, item in enumerate(items):
            yield i, fn(common, item)

    def close(self) -> None:
        pass

    def __enter__(self) -> "LocalBackend":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _import_ray():
    try:
        import ray
    except ImportError as e:
        raise ConfigError("the ray backend needs Ray: pip install 'unlearnkit[ray]' (or pip install ray)") from e
    return ray


def _run_task(fn: Job, common: Any, item: Any, backend: "RayBackend") -> Any:
    """The body of every Ray task: fixed thread count, this backend current for nested jobs."""
    torch.set_num_threads(backend.threads_per_task)
    with use_backend(backend):
        return fn(common, item)


class RayBackend:
    """Runs jobs as Ray tasks, ``threads_per_task`` CPUs and torch threads each.

    Args:
        address: a running cluster (``"auto"``, ``"ray://host:10001"``); default ``$RAY_ADDRESS`` or
            a new local cluster.
        num_cpus: CPUs of a new local cluster (default: all).
        threads_per_task: torch threads (and Ray CPUs) per task.
        max_retries: how often Ray reruns a task whose worker died (not one that raised).
        gpus_per_task: GPUs Ray reserves for each task (fractional: several tasks share one GPU);
            needed for jobs on CUDA, since Ray hides the GPUs from a task that reserves none.
    """

    name = "ray"

    def __init__(self, *, address: str | None = None, num_cpus: int | None = None, threads_per_task: int = 1,
                 max_retries: int = 3, gpus_per_task: float = 0.0) -> None:
        if not (isinstance(threads_per_task, int) and threads_per_task >= 1):
            raise ConfigError(f"threads_per_task must be a positive integer, got {threads_per_task!r}")
        if not (isinstance(max_retries, int) and max_retries >= 0):
            raise ConfigError(f"max_retries must be a non-negative integer, got {max_retries!r}")
        if not (isinstance(gpus_per_task, (int, float)) and 0 <= gpus_per_task and
                (gpus_per_task <= 1 or float(gpus_per_task).is_integer())):
            raise ConfigError(f"gpus_per_task must be a share of one GPU in [0, 1] or a whole number, got {gpus_per_task!r}")
        self.gpus_per_task = gpus_per_task
        self.address, self.num_cpus = address, num_cpus
        self.threads_per_task, self.max_retries = threads_per_task, max_retries
        self._started = False

    def __getstate__(self) -> dict:  # a copy sent to a task never owns the cluster
        return {**self.__dict__, "_started": False}

    def start(self) -> None:
        """Connect to (or start) the cluster unless this process already is connected."""
        ray = _import_ray()
        if ray.is_initialized():
            return
        kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.WARNING}
        if self.num_cpus is not None:
            kwargs["num_cpus"] = self.num_cpus
        ray.init(address=self.address, **kwargs)
        self._started = True

    def map(self, fn: Job, items: Iterable[Any], *, common: Any = None) -> Iterator[tuple[int, Any]]:
        ray = _import_ray()
        self.start()
        task = ray.remote(num_cpus=self.threads_per_task, num_gpus=self.gpus_per_task,
                          max_retries=self.max_retries)(_run_task)
        common_ref = ray.put(common)
        index = {task.remote(fn, common_ref, item, self): i for i, item in enumerate(items)}
        pending = list(index)
        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                try:
                    result = ray.get(done[0])
                except ray.exceptions.RayTaskError:
                    raise  # the job's own exception (an instance of its class too), never retried
                except ray.exceptions.RayError as e:
                    name = getattr(fn, "__name__", type(fn).__name__)
                    raise BackendError(f"a {name} job failed on Ray after {self.max_retries} retries: {e}") from e
                yield index[done[0]], result
        finally:
            for ref in pending:
                ray.cancel(ref)

    def close(self) -> None:
        """Shut down the cluster if this backend started it."""
        if self._started:
            _import_ray().shutdown()
            self._started = False

    def __enter__(self) -> "RayBackend":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


BACKENDS: dict[str, Callable[..., Backend]] = {"local": LocalBackend, "ray": RayBackend}


def create_backend(name: str, **options: Any) -> Backend:
    """``local`` or ``ray`` (options: see :class:`RayBackend`).

    Raises:
        ConfigError: an unknown name (lists the valid ones).
    """
    if name not in BACKENDS:
        raise ConfigError(f"unknown backend {name!r}; valid: {', '.join(BACKENDS)}")
    return BACKENDS[name](**options)


_CURRENT: contextvars.ContextVar[Backend | None] = contextvars.ContextVar("unlearnkit_backend", default=None)


def current_backend() -> Backend:
    """The backend set by the innermost :func:`use_backend` (default: local)."""
    return _CURRENT.get() or LocalBackend()


@contextlib.contextmanager
def use_backend(backend: Backend) -> Iterator[Backend]:
    """Make ``backend`` the one that jobs started inside (e.g. SISA's shards) go to."""
    token = _CURRENT.set(backend)
    try:
        yield backend
    finally:
        _CURRENT.reset(token)
