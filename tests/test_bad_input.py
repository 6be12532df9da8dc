"""The bad-input battery (issue 20): every input a new user can get wrong, through the real CLI.

Each case is refused by ``unlearnkit.cli.main`` — the function the ``unlearnkit`` command runs —
with exit code 2 and one line on stderr that names the input, no traceback, nothing written to
``--out``, no model trained or cached, in under a second; ``run`` cases are refused alike with and
without ``--dry-run``. The cases walk the issue's table (requests, dry runs, data files, huge IDs,
``--out``, ``--methods``, hyperparameter types) and the request classes of DESIGN.md (out of
range, duplicates, not in the training set, empty, a class emptied that is not named, the whole
training set). Rerun: ``.venv/bin/python -m pytest tests/test_bad_input.py``.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

from unlearnkit.cli import main
from unlearnkit.data import load_dataset

SYNTH = dict(n_train=600, n_test=200, size=8, noise=90.0)
TINY = ["data.name=synthetic", "data.options.n_train=600", "data.options.n_test=200", "data.options.size=8",
        "data.options.noise=90", "model.options.channels=[4,8]", "model.options.hidden=16", "train.epochs=2",
        "--seeds", "0,1,2"]


def _npz(**change):
    """A valid float-feature npz (4 classes), with ``change`` applied to named arrays."""
    rng = np.random.default_rng(0)
    arrays = dict(x_train=rng.random((40, 5)).astype(np.float32), y_train=np.arange(40) % 4,
                  x_test=rng.random((12, 5)).astype(np.float32), y_test=np.arange(12) % 4)
    for name, fn in change.items():
        if fn is None:
            del arrays[name]
        else:
            arrays[name] = fn(arrays[name].copy())
    return arrays


def _set(index, value):
    def fn(a):
        a[index] = value
        return a
    return fn


NPZ = {  # file name -> arrays (None: written by hand below)
    "nan-x-train.npz": _npz(x_train=_set((3, 1), np.nan)),
    "nan-x-test.npz": _npz(x_test=_set((5, 0), np.nan)),
    "inf-x-test.npz": _npz(x_test=_set((2, 2), np.inf)),
    "huge-x-train.npz": _npz(x_train=lambda a: np.full(a.shape, 1e300)),  # float64 beyond float32: inf
    "stray-label.npz": _npz(y_train=_set(7, 99)),
    "class-only-in-test.npz": _npz(y_test=_set(0, 4)),
    "class-only-in-train.npz": _npz(y_test=lambda y: np.where(y == 3, 0, y)),
    "negative-label.npz": _npz(y_train=lambda y: y - 1),
    "float-labels.npz": _npz(y_train=lambda y: y.astype(np.float64)),
    "length-mismatch.npz": _npz(y_train=lambda y: y[:-1]),
    "no-y-test.npz": _npz(y_test=None),
    "empty-arrays.npz": _npz(x_train=lambda x: x[:0], y_train=lambda y: y[:0]),
}
NPZ_ARGS = ["data.name=npz", "model.name=mlp", "model.options.hidden=[8]", "--seeds", "0,1,2"]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """The files the cases name, written once."""
    d = tmp_path_factory.mktemp("inputs")
    labels = load_dataset("synthetic", **SYNTH).train.y
    text = {
        "empty.txt": "",
        "comments.txt": "# nothing to delete\n",
        "word.txt": "1\nabc\n",
        "float.txt": "1.5\n",
        "huge.txt": "123456789012345678901234\n",
        "negative.txt": "-1\n5\n",
        "too-large.txt": "600\n",
        "duplicate.txt": "1\n1\n",
        "class3.txt": "\n".join(str(i) for i in np.flatnonzero(labels.numpy() == 3)),
        "everything.txt": "\n".join(str(i) for i in range(600)),
        "twenty.txt": "\n".join(str(i) for i in range(0, 600, 30)),
        "dict.json": '{"ids": [1, 2]}',
        "bad.yaml": "data: [unclosed\n",
        "list.yaml": "- 1\n- 2\n",
        "a-file": "",
        "empty.npz": "",
    }
    for name, content in text.items():
        (d / name).write_text(content)
    np.save(d / "floats.npy", np.array([1.0, 2.0]))
    for name, arrays in NPZ.items():
        np.savez(d / name, **arrays)
    np.savez(d / "good.npz", **_npz())
    whole = (d / "good.npz").read_bytes()
    (d / "truncated.npz").write_bytes(whole[: len(whole) // 2])
    np.save(d / "single.npy", np.zeros(3))
    (d / "single.npz").write_bytes((d / "single.npy").read_bytes())
    (d / "records-empty").mkdir()
    return d


# (id, extra arguments of `unlearnkit run` or a full command, message fragment, how the message names the input)
# `@name` is a file in `inputs`; the message must contain the fragment, with `@name` replaced by the file's path.
RUN_CASES = [
    # --- deletion requests: an IDs file (the request classes of DESIGN.md, and the rows 1-3, 7)
    ("ids-file-missing", ["--forget-ids", "@missing.txt"], "forget ids file not found: @missing.txt"),
    ("ids-file-empty", ["--forget-ids", "@empty.txt"], "@empty.txt: the forget request is empty"),
    ("ids-file-only-comments", ["--forget-ids", "@comments.txt"], "@comments.txt: the forget request is empty"),
    ("ids-not-an-integer", ["--forget-ids", "@word.txt"], "@word.txt:2: 'abc' is not an integer id"),
    ("ids-a-float", ["--forget-ids", "@float.txt"], "@float.txt:1: '1.5' is not an integer id"),
    ("ids-23-digits", ["--forget-ids", "@huge.txt"], "@huge.txt: forget ids out of range: [123456789012345678901234]"),
    ("ids-negative", ["--forget-ids", "@negative.txt"], "@negative.txt: forget ids out of range: [-1]"),
    ("ids-not-in-the-training-file", ["--forget-ids", "@too-large.txt"],
     "@too-large.txt: forget ids out of range: [600] (the training file has ids 0..599)"),
    ("ids-duplicated", ["--forget-ids", "@duplicate.txt"], "@duplicate.txt: duplicate forget ids: [1]"),
    ("ids-empty-a-class", ["--forget-ids", "@class3.txt"],
     "@class3.txt: the forget request removes every training sample of class(es) [3]"),
    ("ids-the-whole-training-set", ["--forget-ids", "@everything.txt"],
     "@everything.txt: the forget request names the whole training set"),
    ("ids-json-not-a-list", ["--forget-ids", "@dict.json"], "@dict.json: expected a JSON list of integers"),
    ("ids-npy-floats", ["--forget-ids", "@floats.npy"], "@floats.npy: ids must be integers, got float64"),
    ("ids-more-than-the-subset", ["--forget-ids", "@twenty.txt", "data.train_subset=10"],
     "data.train_subset=10 is smaller than the forget request (20 ids)"),
    # --- classes and scenarios (rows 1, 2, 10)
    ("class-99", ["--forget-class", "99"], "class 99 does not exist in the training set"),
    ("class-negative", ["--scenario", "class", "--forget-class", "-1"], "class -1 does not exist"),
    ("class-scenario-without-a-class", ["--scenario", "class"], "the class scenario needs forget.forget_class"),
    ("class-with-another-scenario", ["--scenario", "random", "--forget-class", "2"],
     "forget.forget_class=2 applies to the class scenario, not 'random'"),
    ("scenario-unknown", ["--scenario", "nope"], "unknown scenario 'nope'"),
    ("adversary-unknown", ["--scenario", "adversarial:nope"], "unknown adversary 'nope'"),
    ("forget-fraction-above-1", ["forget.fraction=1.5"], "forget.fraction must lie in (0, 1), got 1.5"),
    ("forget-count-0", ["forget.count=0"], "forget.count must be >= 1, got 0"),
    ("forget-count-the-whole-set", ["forget.count=100000"], "forget.count=100000 is not below the training set size"),
    # --- split sizes (row 2)
    ("train-subset-0", ["data.train_subset=0"], "data.train_subset must lie in [1, 600], got 0"),
    ("train-subset-too-large", ["data.train_subset=601"], "data.train_subset must lie in [1, 600], got 601"),
    ("test-subset-0", ["data.test_subset=0"], "data.test_subset must lie in [1, 200], got 0"),
    ("val-fraction-0", ["data.val_fraction=0"], "data.val_fraction must lie in (0, 1), got 0"),
    # --- options (rows 9, 10, 12)
    ("methods-empty", ["--methods", ""], "--methods names nothing"),
    ("methods-repeated", ["--methods", "ft,ft"], "methods repeat: ['ft', 'ft']"),
    ("method-unknown", ["--methods", "nope"], "unknown method 'nope'"),
    ("hyperparameter-not-a-number", ["params.ft.lr_share=abc"], "params.ft.lr_share must be a number, got 'abc'"),
    ("hyperparameter-unknown", ["params.ft.nope=1"], "method 'ft' has no hyperparameter(s) ['nope']"),
    ("params-of-an-unknown-method", ["params.nope.x=1"], "params.nope: unknown method"),
    ("epochs-negative", ["train.epochs=-1"], "train.epochs must be > 0"),
    ("config-key-unknown", ["nope=1"], "unknown key(s) ['nope']"),
    ("seeds-repeated", ["--seeds", "0,0"], "seeds repeat: [0, 0]"),
    ("seeds-not-integers", ["--seeds", "abc"], "seeds must be an integer, got 'abc'"),
    ("sparsity-1.5", ["sparsity=1.5"], "sparsity must lie in [0, 1)"),
    ("out-names-a-file", ["--out", "@a-file"], "the output folder @a-file is a file; name a folder"),
    ("config-file-missing", ["--config", "@missing.yaml"], "config file not found: @missing.yaml"),
    ("config-not-yaml", ["--config", "@bad.yaml"], "@bad.yaml is not valid YAML"),
    ("config-not-a-mapping", ["--config", "@list.yaml"], "@list.yaml: a config must be a mapping"),
    ("dataset-unknown", ["data.name=nope"], "unknown dataset 'nope'"),
    ("dataset-option-unknown", ["data.options.nope=1"], "dataset 'synthetic' takes no option(s) ['nope']"),
    ("model-unknown", ["model.name=nope"], "unknown model 'nope'"),
    ("model-option-unknown", ["model.options.width=3"], "model 'cnn' takes no option(s) ['width']"),
    # --- data files (rows 5, 6): checked when the data loads, before anything trains
    ("npz-no-path", NPZ_ARGS, "dataset 'npz' needs a file: set data.path="),
    ("npz-missing", [*NPZ_ARGS, "data.path=@missing.npz"], "npz dataset file not found: @missing.npz"),
    ("npz-empty-file", [*NPZ_ARGS, "data.path=@empty.npz"], "cannot read npz dataset @empty.npz: the file is empty"),
    ("npz-truncated", [*NPZ_ARGS, "data.path=@truncated.npz"],
     "cannot read npz dataset @truncated.npz: not a complete zip archive"),
    ("npz-not-an-archive", [*NPZ_ARGS, "data.path=@single.npz"], "@single.npz: not an npz archive"),
    ("npz-missing-array", [*NPZ_ARGS, "data.path=@no-y-test.npz"], "@no-y-test.npz: missing arrays ['y_test']"),
    ("npz-empty-arrays", [*NPZ_ARGS, "data.path=@empty-arrays.npz"], "@empty-arrays.npz: x_train is empty"),
    ("npz-lengths-differ", [*NPZ_ARGS, "data.path=@length-mismatch.npz"],
     "@length-mismatch.npz: x_train has 40 samples but y_train has shape (39,)"),
    ("npz-nan-in-x-train", [*NPZ_ARGS, "data.path=@nan-x-train.npz"],
     "@nan-x-train.npz: x_train holds NaN or inf (as float32) in 1 sample(s), first row 3"),
    ("npz-nan-in-x-test", [*NPZ_ARGS, "data.path=@nan-x-test.npz"], "@nan-x-test.npz: x_test holds NaN or inf"),
    ("npz-inf-in-x-test", [*NPZ_ARGS, "data.path=@inf-x-test.npz"], "@inf-x-test.npz: x_test holds NaN or inf"),
    ("npz-beyond-float32", [*NPZ_ARGS, "data.path=@huge-x-train.npz"],
     "@huge-x-train.npz: x_train holds NaN or inf (as float32) in 40 sample(s)"),
    ("npz-stray-label-99", [*NPZ_ARGS, "data.path=@stray-label.npz"],
     "@stray-label.npz: labels must number the classes 0..K-1 without gaps, but classes [4..98] have no "
     "samples; label 99 has only 1"),
    ("npz-class-only-in-test", [*NPZ_ARGS, "data.path=@class-only-in-test.npz"],
     "@class-only-in-test.npz: class(es) [4] appear in y_test but not in y_train"),
    ("npz-class-only-in-train", [*NPZ_ARGS, "data.path=@class-only-in-train.npz"],
     "@class-only-in-train.npz: class(es) [3] appear in y_train but not in y_test"),
    ("npz-negative-label", [*NPZ_ARGS, "data.path=@negative-label.npz"],
     "@negative-label.npz: labels must be >= 0, found -1 in y_train"),
    ("npz-float-labels", [*NPZ_ARGS, "data.path=@float-labels.npz"],
     "@float-labels.npz: labels must be integers, got float64 in y_train"),
]
REPORT_CASES = [
    ("report-folder-without-records", ["report", "@records-empty"], "no records in @records-empty"),
    ("report-a-file", ["report", "@a-file"], "@a-file is a file"),
]
N_BAD_INPUTS = len(RUN_CASES) + len(REPORT_CASES)


def _fill(args: list[str], d: Path) -> list[str]:
    return [a.replace("@", f"{d}/") if "@" in a else a for a in args]


@pytest.fixture(autouse=True)
def _nothing_trains(monkeypatch):
    """Every case is refused before an original is trained or loaded."""
    import unlearnkit.experiments.setup as setup

    def no_training(*args, **kwargs):
        raise AssertionError("an original model was trained before the bad input was refused")

    monkeypatch.setattr(setup, "train_original", no_training)


@pytest.fixture(scope="module", autouse=True)
def _warm(tmp_path_factory):
    """Import what the CLI imports lazily, so that the timing below measures the checks alone."""
    out = tmp_path_factory.mktemp("warm") / "out"
    assert main(["run", *TINY, "--methods", "ft", "--out", str(out), "--dry-run"]) == 0


def refused(argv: list[str], fragment: str, capsys, tmp_path) -> None:
    before = set(Path(os.environ["UNLEARNKIT_CACHE"]).rglob("*"))
    start = time.perf_counter()
    code = main(argv)
    seconds = time.perf_counter() - start
    captured = capsys.readouterr()
    assert code == 2, captured.err
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("unlearnkit: error: "), captured.err  # one line, nothing else
    assert fragment in lines[0]
    assert "Traceback" not in captured.err + captured.out
    assert not (tmp_path / "out").exists()  # nothing written to --out
    assert set(Path(os.environ["UNLEARNKIT_CACHE"]).rglob("*")) == before  # no model trained or cached
    assert seconds < 1.0, f"{seconds:.2f} s to refuse"


@pytest.mark.parametrize("dry", [[], ["--dry-run"]], ids=["run", "dry-run"])
@pytest.mark.parametrize("case, args, fragment", RUN_CASES, ids=[c[0] for c in RUN_CASES])
def test_run_refuses(inputs, tmp_path, capsys, case, args, fragment, dry):
    args = _fill(args, inputs)
    out = [] if "--out" in args else ["--out", str(tmp_path / "out")]
    base = TINY if not any(a.startswith("data.name=npz") for a in args) else []
    refused(["run", *base, *args, *out, *dry], _fill([fragment], inputs)[0], capsys, tmp_path)
    assert (inputs / "a-file").read_text() == ""  # --out naming a file leaves it as it was


@pytest.mark.parametrize("case, args, fragment", REPORT_CASES, ids=[c[0] for c in REPORT_CASES])
def test_report_refuses(inputs, tmp_path, capsys, case, args, fragment):
    refused(_fill(args, inputs), _fill([fragment], inputs)[0], capsys, tmp_path)


def test_the_good_inputs_beside_them_pass_a_dry_run(inputs, tmp_path, capsys):
    """The controls: the valid IDs file (seeds 0, 1, 2 — row 3 of the issue) and the valid npz."""
    assert main(["run", *TINY, "--forget-ids", str(inputs / "twenty.txt"), "--out", str(tmp_path / "a"),
                 "--dry-run"]) == 0
    assert main(["run", *NPZ_ARGS, f"data.path={inputs / 'good.npz'}", "--out", str(tmp_path / "b"), "--dry-run"]) == 0
    assert "error" not in capsys.readouterr().err


def test_the_count_in_the_docs_is_the_battery():
    """README and docs/architecture.md quote N/N: the number of bad inputs walked here."""
    root = Path(__file__).resolve().parents[1]
    for doc in ("README.md", "docs/architecture.md"):
        assert f"{N_BAD_INPUTS}/{N_BAD_INPUTS} bad inputs refused" in (root / doc).read_text(), doc
