"""The one runner every recipe uses: skip recorded keys, prepare, run jobs on a backend, record.

A recipe lists its jobs (one per record) and supplies three functions: ``prepare(context, group)``
builds what the jobs of a group share into the content caches (the original, a request, the
oracle) so that parallel jobs find it there; ``execute(context, job)`` returns the job's record
(and optional per-sample arrays); ``compare(record, reference)`` (optional) adds the distance to
the group's reference record (the oracle's). Jobs run on a backend (backends.py: this process, or
Ray); only the driver writes, each record once, references first: a record waits for its group's
reference, so a table never holds a row without its comparison. An unlearning that diverges
(TrainingError) becomes a failed record and the others go on; a failing reference stops the run.
"""
from __future__ import annotations

import logging
import math
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Callable, Hashable, Iterable

from ..backends import Backend, LocalBackend
from ..errors import TrainingError
from .records import Record, RecordStore, save_samples

log = logging.getLogger("unlearnkit")
Arrays = dict[str, Any] | None  # a record's per-sample arrays, if any


@dataclass(frozen=True)
class Job:
    """One record to make: its key, its group (jobs of a group share a setup and a reference),
    whether it is the group's reference, and what the recipe needs to run it (``spec``)."""

    key: str
    group: Hashable
    spec: Any
    reference: bool = False


@dataclass(frozen=True)
class Recipe:
    """The recipe-specific parts of a run. ``failed``: the fields a failed record gets besides
    ``status`` and ``error`` (what its kind's report expects in place of results)."""

    kind: str
    prepare: Callable[[Any, Hashable], None]
    describe: Callable[[Any, Job], Record]
    execute: Callable[[Any, Job, Record], tuple[Record, Arrays]]
    compare: Callable[[Record, Record | None], Record] | None = None
    failed: tuple[tuple[str, Any], ...] = (("metrics", {}), ("seconds", math.nan))


def _prepare(common: tuple[Recipe, Any], group: Hashable) -> None:
    recipe, context = common
    recipe.prepare(context, group)


def _execute(common: tuple[Recipe, Any], job: Job) -> tuple[Record, Arrays]:
    """Runs on a worker: the job's record, a failed one if its training diverged."""
    recipe, context = common
    record = {"kind": recipe.kind, "key": job.key, **recipe.describe(context, job)}
    try:
        return recipe.execute(context, job, record)
    except TrainingError as e:
        if job.reference:
            raise  # no table without its reference
        log.error("%s failed: %s", record.get("row") or record.get("method") or job.key, e)
        return {**record, "status": "failed", "error": str(e), **dict(recipe.failed)}, None


def run_jobs(recipe: Recipe, context: Any, jobs: Iterable[Job], *, store: RecordStore, written: set[str],
             references: dict[Hashable, Record] | None = None, backend: Backend | None = None) -> int:
    """Run the jobs whose key is not in ``written`` and append their records to ``store``; return
    how many ran. ``references``: recorded reference records by group (compared with, not rerun)."""
    backend = backend or LocalBackend()
    pending = [job for job in jobs if job.key not in written]
    if not pending:
        return 0
    references = dict(references or {})
    for _ in backend.map(_prepare, list(dict.fromkeys(job.group for job in pending)), common=(recipe, context)):
        pass
    job_of = {job.key: job for job in pending}
    waiting: dict[Hashable, list[tuple[Record, Arrays]]] = defaultdict(list)

    def write(record: Record, samples: Arrays, reference: Record | None) -> Record:
        if record["key"] in written:  # a job a backend reran after its worker died
            return record
        if recipe.compare is not None:
            record = recipe.compare(record, reference)
        record["created"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        if samples is not None:
            save_samples(store.dir / "samples" / f"{record['key']}.npz", samples)
        store.append(record)
        written.add(record["key"])
        return record

    for _, (record, samples) in backend.map(_execute, pending, common=(recipe, context)):
        job = job_of[record["key"]]
        group = job.group
        if recipe.compare is None:
            write(record, samples, None)
        elif job.reference:
            references[group] = write(record, samples, None)
            for item in waiting.pop(group, []):
                write(*item, references[group])
        elif group in references:
            write(record, samples, references[group])
        else:
            waiting[group].append((record, samples))
    return len(pending)
