"""``unlearnkit``: ls | run | report | tune | damage | heal | register | serve | worker."""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from .errors import UnlearnKitError

LISTS = ("datasets", "models", "methods", "attacks", "scenarios", "adversaries")


def _cmd_ls(args: argparse.Namespace) -> int:
    from .adversary import list_adversaries
    from .attacks import list_attacks
    from .data import list_datasets, list_scenarios
    from .methods import list_methods
    from .models import UNAVAILABLE, list_models

    listers = {"datasets": list_datasets, "models": list_models, "methods": list_methods,
               "attacks": list_attacks, "scenarios": list_scenarios, "adversaries": list_adversaries}
    for kind in [args.kind] if args.kind else LISTS:
        print(f"{kind}: {', '.join(listers[kind]())}")
        if kind == "models" and UNAVAILABLE:
            print(f"  not available here: {', '.join(sorted(UNAVAILABLE))} ({next(iter(UNAVAILABLE.values()))})")
    return 0


def _overrides(args: argparse.Namespace) -> list[str]:
    if args.forget_class is not None and args.scenario is None and args.forget_ids is None:
        args.scenario = "class"  # --forget-class alone means: forget that class
    out = list(args.overrides)
    if args.scenario is not None:
        out.append(f"forget.scenario={args.scenario}")
    if args.forget_class is not None:
        out.append(f"forget.forget_class={args.forget_class}")
    if args.forget_ids is not None:
        out += ["forget.scenario=ids", f"forget.ids_file={args.forget_ids}"]
    if args.methods is not None:
        out.append(f"methods=[{_listed('--methods', args.methods)}]")
    if args.seeds is not None:
        out.append(f"seeds=[{args.seeds}]")
    if args.out is not None:
        out.append(f"out_dir={args.out}")
    if args.data_dir is not None:
        out.append(f"data.data_dir={args.data_dir}")
    if args.sparsity is not None:
        out.append(f"sparsity={args.sparsity}")
    if args.device is not None:
        out.append(f"device={args.device}")
    if getattr(args, "select", False):
        out.append("select=true")
    return out


def _checked(config):
    """``config`` once its device is available and can run its precision (before any work)."""
    from .utils.devices import check_precision, resolve_device

    check_precision(config.train.precision, resolve_device(config.device))
    return config


def _listed(option: str, value: str) -> str:
    """A comma-separated option's value, refused when it names nothing (it would mean "all")."""
    if not value.strip(" ,"):
        raise UnlearnKitError(f"{option} names nothing; leave it out to mean all, or list names")
    return value


def _with_backend(args: argparse.Namespace, config, run):
    """``run(backend)`` on the backend the user named, closed afterwards. Ray tasks of a CUDA run
    reserve ``--gpus-per-task`` of a GPU each."""
    from .backends import create_backend
    from .utils.devices import resolve_device

    gpus = args.gpus_per_task if args.gpus_per_task is not None else 0.25
    on_gpu = args.backend == "ray" and resolve_device(config.device).type == "cuda"
    backend = create_backend(args.backend, **({"gpus_per_task": gpus} if on_gpu else {}))
    try:
        return run(backend)
    finally:
        backend.close()


def _finish(records: list[dict], out_dir: Path, text: str, *, dry_run: bool, retry: str | None = None) -> int:
    """Print the table and where it went; exit 1 when a row failed, saying how to run it again
    (``retry``: the option that reruns failed rows, where the command has one)."""
    if dry_run:
        print(f"dry run: nothing trained; records would go to {out_dir / 'records.jsonl'}")
        return 0
    print(text)
    print(f"records: {out_dir / 'records.jsonl'}   table: {out_dir / 'table.md'}")
    failed = sum(r.get("status") != "ok" for r in records)
    if failed and retry:
        print(f"unlearnkit: {failed} row(s) failed (errors in the table); a rerun keeps them as recorded: rerun with "
              f"{retry} to run them again (changed hyperparameters get rows of their own)", file=sys.stderr)
    elif failed:
        print(f"unlearnkit: {failed} row(s) failed (errors in the table); a rerun keeps them as recorded: change the "
              "method's hyperparameters, or delete their lines from records.jsonl, to run them again", file=sys.stderr)
    return 1 if failed else 0


def _cmd_run(args: argparse.Namespace) -> int:
    from .experiments import load_config, run_experiment
    from .experiments.recipes.run import default_out_dir
    from .report import experiment_report

    config = _checked(load_config(args.config, _overrides(args)))
    out_dir = Path(config.out_dir) if config.out_dir else default_out_dir(config)
    records = _with_backend(args, config, lambda backend: run_experiment(config, dry_run=args.dry_run, backend=backend,
                                                                 retry_failed=args.retry_failed))
    from .report.per_example import per_example_table  # audit.per_example=N: U-LiRA and KLoM (issue 21)
    text = "" if args.dry_run else "\n".join(t for t in (experiment_report(records), per_example_table(records)) if t)
    return _finish(records, out_dir, text, dry_run=args.dry_run, retry="--retry-failed")


def _cmd_report(args: argparse.Namespace) -> int:
    from .experiments.records import RecordStore
    from .report import render

    records: dict[str, dict] = {}
    for out_dir in args.out_dirs:
        found = list(RecordStore(out_dir, complete=True))
        if not found:
            raise UnlearnKitError(f"no records in {Path(out_dir) / 'records.jsonl'}")
        records.update((r["key"], r) for r in found)
    print(render(records.values()))
    return 0


def _cmd_adversarial(args: argparse.Namespace) -> int:
    from .experiments import AdversarialConfig, load, run_damage, run_heal

    overrides = list(args.overrides)
    for name, value in (("seeds", args.seeds), ("methods", args.methods), ("strategies", getattr(args, "strategies", None))):
        if value is not None:
            overrides.append(f"{name}=[{_listed('--' + name, value)}]")
    if args.out is not None:
        overrides.append(f"out_dir={args.out}")
    if args.data_dir is not None:
        overrides.append(f"data.data_dir={args.data_dir}")
    if args.device is not None:
        overrides.append(f"device={args.device}")
    config = _checked(load(AdversarialConfig, args.config, overrides))
    run = run_damage if args.command == "damage" else run_heal
    records = _with_backend(args, config, lambda backend: run(config, dry_run=args.dry_run, backend=backend))
    out_dir = Path(config.out_dir or f"runs/{args.command}")
    table = out_dir / "table.md"
    return _finish(records, out_dir, table.read_text() if table.exists() else "no records", dry_run=args.dry_run)


def _experiment_arguments(parser: argparse.ArgumentParser, *, scenarios: str, seeds: str, out: str,
                          sparsity: str) -> None:
    """The options that pick an experiment, shared by ``run`` and ``tune`` (help texts differ)."""
    parser.add_argument("--config", help="YAML experiment file (see configs/)")
    parser.add_argument("--scenario", help=f"forget scenario: {scenarios}")
    parser.add_argument("--forget-class", type=int, help="class to forget (class scenario)")
    parser.add_argument("--forget-ids", help="file of training IDs to forget (ids scenario)")
    parser.add_argument("--seeds", help=f"comma-separated seeds ({seeds})")
    parser.add_argument("--out", help=out)
    parser.add_argument("--data-dir", help="folder holding the dataset files")
    parser.add_argument("--sparsity", help=sparsity)


def _backend_argument(parser: argparse.ArgumentParser) -> None:
    """``--backend`` and ``--device``: where the jobs run (every subcommand that trains has both)."""
    parser.add_argument("--device", help="auto (default: CUDA when available, else the CPU) | cpu | cuda | cuda:N | "
                                         "mps; config key device")
    parser.add_argument("--backend", default="local",
                        help="where the jobs (seed × row) and SISA shards go: local (default, in this process) or "
                             "ray (pip install 'unlearnkit[ray]'; the cluster at $RAY_ADDRESS, else a local one)")
    parser.add_argument("--gpus-per-task", type=float,
                        help="ray with a CUDA device: the share of a GPU each task reserves (default 0.25: four "
                             "jobs share a GPU)")


def _adversarial_parser(sub, name: str, help: str, description: str) -> None:
    p = sub.add_parser(name, help=help, description=description + " Extra arguments are key=value overrides.")
    p.add_argument("overrides", nargs="*", metavar="key=value")
    p.add_argument("--config", help="YAML experiment file (configs/w1-damage.yaml, configs/w1-heal.yaml)")
    p.add_argument("--methods", help="comma-separated unlearning methods (default: all registered)")
    if name == "damage":
        p.add_argument("--strategies", help="comma-separated adversaries (see `unlearnkit ls adversaries`)")
    p.add_argument("--seeds", help="comma-separated seeds (default 0,1,2)")
    p.add_argument("--out", help=f"output folder (default runs/{name})")
    p.add_argument("--data-dir", help="folder holding the dataset files")
    p.add_argument("--dry-run", action="store_true", help="validate the config and show what would run")
    _backend_argument(p)
    p.set_defaults(func=_cmd_adversarial)


def _cmd_tune(args: argparse.Namespace) -> int:
    from .experiments import load_config
    from .experiments.recipes.tune import parse_grid, run_tune, tune_dir
    from .report.tune import tune_report

    grid, overrides = parse_grid(args.method, args.overrides)
    config = _checked(load_config(args.config, _overrides(argparse.Namespace(**{**vars(args), "overrides": overrides}))))
    records = _with_backend(args, config, lambda backend: run_tune(config, grid, backend=backend))
    print(tune_report(records, grid))
    print(f"records: {tune_dir(config) / 'records.jsonl'}")
    return 1 if any(r.get("status") != "ok" for r in records) else 0


def _service_db(args: argparse.Namespace):
    from .service.server import open_db, service_dir

    folder = service_dir(args.dir)
    return folder, open_db(folder, args.db)


def _cmd_register(args: argparse.Namespace) -> int:
    from .service.registration import register
    from .service.spec import read_spec

    spec = read_spec(args.spec)  # checked before the database is opened or anything trains
    folder, db = _service_db(args)
    done = register(db, spec, folder)
    print(f"registered deployment {done.name!r} in {done.folder} (version 0: TA {done.audit['TA']:.2f}%)")
    if done.admin_token:
        print(f"admin token (shown once, keep it): {done.admin_token}")
    print("owner tokens (shown once; hand each owner theirs):")
    for owner, token in done.tokens.items():
        print(f"  {owner}\t{token}")
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from .service.server import serve

    folder, db = _service_db(args)
    print(f"unlearnkit serve: http://{args.host}:{args.port}/ (database {db.url}; worker "
          f"{'in this process' if args.worker else 'not started: run unlearnkit worker'})", file=sys.stderr, flush=True)
    serve(db, host=args.host, port=args.port, worker=args.worker, lease_s=args.lease)
    return 0


def _cmd_worker(args: argparse.Namespace) -> int:
    from .service.worker import Worker

    _, db = _service_db(args)
    if args.nice and hasattr(os, "nice"):  # a batch job: the API server on the same cores answers first
        os.nice(args.nice)
    Worker(db, lease_s=args.lease, poll_s=args.poll).run()
    return 0


def _service_arguments(parser: argparse.ArgumentParser, *, lease: bool = True) -> None:
    parser.add_argument("--dir", help="the service's folder: deployments and the default SQLite database "
                                      "(default ./serve, or $UNLEARNKIT_SERVE_DIR)")
    parser.add_argument("--db", help="database URL, e.g. postgresql+psycopg://user@host:5432/db (default: "
                                     "$UNLEARNKIT_DB, else sqlite in --dir)")
    if lease:
        parser.add_argument("--lease", type=float, default=30.0,
                            help="seconds a worker's claim on a batch lasts without a heartbeat (default 30)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="unlearnkit", description="Machine unlearning for PyTorch classifiers.")
    sub = p.add_subparsers(dest="command", required=True)

    ls = sub.add_parser("ls", help="list registered datasets, models, methods, attacks, scenarios")
    ls.add_argument("kind", nargs="?", choices=LISTS)
    ls.set_defaults(func=_cmd_ls)

    run = sub.add_parser("run", help="unlearn with every method, audit, and print the table",
                         description="Run an experiment. Extra arguments are key=value overrides, e.g. "
                                     "train.epochs=5 params.ft.lr_share=0.2 data.train_subset=2000")
    run.add_argument("overrides", nargs="*", metavar="key=value")
    run.add_argument("--methods", help="comma-separated methods (default: all registered)")
    _experiment_arguments(run, scenarios="random | class | ids | adversarial:<strategy>",
                          seeds="default 0,1,2", out="output folder (default runs/<dataset>-<model>-<scenario>)",
                          sparsity="prune the original model to this share of zero weights first (e.g. 0.95; "
                                   "default 0 = dense)")
    run.add_argument("--dry-run", action="store_true",
                     help="check everything that needs no model (config, data file, every seed's request, output "
                          "folder) and show what would run; trains and writes nothing")
    run.add_argument("--select", action="store_true",
                     help="also a '<method> (selected)' row per method: its strength chosen from its declared grid "
                          "on the validation split (as `unlearnkit tune`; records under <out>/tune, reused)")
    run.add_argument("--retry-failed", action="store_true",
                     help="run rows recorded as failed again (by default a rerun keeps them as recorded)")
    _backend_argument(run)
    run.set_defaults(func=_cmd_run)

    rep = sub.add_parser("report", help="print the tables of output folders' records (dense and sparse side by side)",
                         description="Print the tables of one or more output folders. Given a dense and a sparse "
                                     "run of the same workload, also a table with dense and sparse columns.")
    rep.add_argument("out_dirs", nargs="+", metavar="DIR")
    rep.set_defaults(func=_cmd_report)

    tune = sub.add_parser("tune", help="search a method's hyperparameters on the validation split",
                          description="Unlearn with every value given (name=v1,v2,...; several names = their "
                                      "product), score each on the validation split against the retrain oracle "
                                      "and print the best. The test set is never read. Other key=value "
                                      "arguments are config overrides, as in run.")
    tune.add_argument("overrides", nargs="*", metavar="name=v1,v2")
    tune.add_argument("--method", required=True, help="the method to tune (see unlearnkit ls methods)")
    _experiment_arguments(tune, scenarios="random | class | ids", seeds="default: the config's",
                          out="the experiment's output folder; records go to OUT/tune/",
                          sparsity="tune on the sparse original of this sparsity (e.g. 0.95)")
    _backend_argument(tune)
    tune.set_defaults(func=_cmd_tune, methods=None)
    _adversarial_parser(sub, "damage", "TA after malicious deletion requests: every method × strategy × budget",
                        "Measure the damage of adversarial deletion requests for every unlearning method.")
    _adversarial_parser(sub, "heal", "heal every method's model after the worst strategy's requests",
                        "Heal unlearned models with the remaining data, twins, spares or random replacements.")
    reg = sub.add_parser("register", help="register a deployment for the deletion service (prints its tokens once)",
                         description="Register a deployment from a YAML spec (configs/serve-fmnist.yaml): data and "
                                     "training IDs, owners, the model (trained now unless a checkpoint is given), the "
                                     "deletion policy, guards, monitor and limits. Needs pip install 'unlearnkit[serve]'.")
    reg.add_argument("spec", metavar="SPEC")
    _service_arguments(reg, lease=False)
    reg.set_defaults(func=_cmd_register)
    srv = sub.add_parser("serve", help="run the deletion-request service (HTTP API and page)",
                         description="Serve POST /deletions, GET /deletions/ID, the admin actions and the page at /.")
    _service_arguments(srv)
    srv.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    srv.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    srv.add_argument("--worker", action="store_true", help="also run a worker in this process")
    srv.set_defaults(func=_cmd_serve)
    wrk = sub.add_parser("worker", help="process queued deletion requests (unlearn, heal, audit, publish)")
    _service_arguments(wrk)
    wrk.add_argument("--poll", type=float, default=0.5, help="seconds between looks at the queue (default 0.5)")
    wrk.add_argument("--nice", type=int, default=10, choices=range(0, 20), metavar="0-19",
                     help="lower the worker's CPU priority by this much, so that a server on the same machine keeps "
                          "its submit latency while the worker trains (default 10; 0 keeps it)")
    wrk.set_defaults(func=_cmd_worker)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)  # key=value overrides may follow options
    if args.command in ("run", "tune", "damage", "heal"):
        args.overrides += [e for e in extra if "=" in e and not e.startswith("-")]
        extra = [e for e in extra if not ("=" in e and not e.startswith("-"))]
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        return args.func(args)
    except UnlearnKitError as e:
        print(f"unlearnkit: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("unlearnkit: interrupted; records written so far are kept", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
