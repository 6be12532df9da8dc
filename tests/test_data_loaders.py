"""Loaders on small files written here in the real formats (IDX, CIFAR pickles, npz, image folders)."""
from __future__ import annotations

import gzip
import pickle
import struct

import numpy as np
import pytest
import torch

from unlearnkit.data import load_dataset
from unlearnkit.data.idx import FILES, read_idx
from unlearnkit.errors import DataError


def write_idx(path, array: np.ndarray, compress: bool) -> None:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(payload) if compress else payload)


def write_mnist_folder(folder, n_train=30, n_test=10, compress=True, seed=0):
    rng = np.random.default_rng(seed)
    arrays = {"train_x": rng.integers(0, 256, (n_train, 28, 28)), "train_y": np.arange(n_train) % 10,
              "test_x": rng.integers(0, 256, (n_test, 28, 28)), "test_y": np.arange(n_test) % 10}
    folder.mkdir(parents=True, exist_ok=True)
    for key, stem in FILES.items():
        write_idx(folder / (stem + (".gz" if compress else "")), arrays[key], compress)
    return arrays


@pytest.mark.parametrize("compress", [True, False])
def test_idx_round_trip(tmp_path, compress):
    a = np.arange(2 * 3 * 4).reshape(2, 3, 4).astype(np.uint8)
    write_idx(tmp_path / "a.idx", a, compress)
    assert np.array_equal(read_idx(tmp_path / "a.idx"), a)


def test_idx_malformed_files_are_named(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04rest")
    with pytest.raises(DataError, match="not an IDX file"):
        read_idx(tmp_path / "bad")
    a = np.zeros((4, 5), dtype=np.uint8)
    write_idx(tmp_path / "short", a, compress=False)
    (tmp_path / "short").write_bytes((tmp_path / "short").read_bytes()[:-3])
    with pytest.raises(DataError, match="promises 20 bytes"):
        read_idx(tmp_path / "short")
    (tmp_path / "trunc.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x01" + b"\x00" * 20)[:-6])
    with pytest.raises(DataError, match="cannot read"):
        read_idx(tmp_path / "trunc.gz")


@pytest.mark.parametrize("name", ["fashion-mnist", "mnist"])
def test_idx_datasets_from_data_dir(tmp_path, name):
    arrays = write_mnist_folder(tmp_path / name, compress=name == "mnist")
    ds = load_dataset(name, data_dir=tmp_path, download=False)
    assert ds.input_shape == (1, 28, 28) and ds.num_classes == 10
    assert ds.train.x.dtype == torch.uint8 and len(ds.train) == 30 and len(ds.test) == 10
    assert torch.equal(ds.train.x[:, 0], torch.from_numpy(arrays["train_x"].astype(np.uint8)))
    assert torch.equal(ds.test.y, torch.from_numpy(arrays["test_y"]).long())


def test_idx_dataset_from_environment_variable(tmp_path, monkeypatch):
    write_mnist_folder(tmp_path)
    monkeypatch.setenv("UNLEARNKIT_DATA", str(tmp_path))
    assert len(load_dataset("mnist", download=False).train) == 30


def test_missing_data_says_where_it_looked_and_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.delenv("UNLEARNKIT_DATA", raising=False)
    monkeypatch.setattr("unlearnkit.data.idx.DEBIAN_FASHION", str(tmp_path / "nowhere"))
    with pytest.raises(DataError) as e:
        # the Debian folder is patched away, so the search must fail even on a machine that has it
        from unlearnkit.data import idx
        idx.load_idx_dataset("fashion-mnist", data_dir=tmp_path / "empty", download=False, url="",
                             system_dirs=(str(tmp_path / "nowhere"),), hint=" (apt-get install dataset-fashion-mnist)")
    msg = str(e.value)
    assert str(tmp_path / "empty") in msg and "dataset-fashion-mnist" in msg and "--data-dir" in msg


def test_label_count_mismatch_is_a_data_error(tmp_path):
    write_mnist_folder(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.arange(7) % 10, compress=True)
    with pytest.raises(DataError, match="10 inputs but 7 labels"):
        load_dataset("mnist", data_dir=tmp_path, download=False)


def _cifar_batch(path, n, label_key, classes, seed):
    rng = np.random.default_rng(seed)
    d = {b"data": rng.integers(0, 256, (n, 3072)).astype(np.uint8), label_key: list(rng.integers(0, classes, n))}
    if label_key == b"fine_labels":
        d[b"coarse_labels"] = list(rng.integers(0, 20, n))
    with open(path, "wb") as f:
        pickle.dump(d, f)
    return d


def test_cifar10_pickle_folder(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    batches = [_cifar_batch(folder / f"data_batch_{i}", 4, b"labels", 10, i) for i in range(1, 6)]
    _cifar_batch(folder / "test_batch", 3, b"labels", 10, 9)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [f"c{i}".encode() for i in range(10)]}, f)
    ds = load_dataset("cifar10", data_dir=tmp_path, download=False)
    assert ds.input_shape == (3, 32, 32) and len(ds.train) == 20 and len(ds.test) == 3
    assert ds.class_names[3] == "c3"
    # channel-first layout: the first 1024 bytes of a row are the red plane
    assert torch.equal(ds.train.x[0, 0].flatten(), torch.from_numpy(batches[0][b"data"][0, :1024]))


def test_cifar100_fine_and_coarse(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    _cifar_batch(folder / "train", 6, b"fine_labels", 100, 1)
    _cifar_batch(folder / "test", 2, b"fine_labels", 100, 2)
    assert load_dataset("cifar100", data_dir=tmp_path, download=False).num_classes == 100
    assert load_dataset("cifar100", data_dir=tmp_path, download=False, coarse=True).num_classes == 20


def test_cifar_missing_and_corrupted(tmp_path):
    with pytest.raises(DataError, match="cifar-10-batches-py"):
        load_dataset("cifar10", data_dir=tmp_path, download=False)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (folder / name).write_bytes(b"garbage")
    with pytest.raises(DataError, match="cannot read CIFAR batch"):
        load_dataset("cifar10", data_dir=tmp_path, download=False)


@pytest.mark.parametrize("layout", ["gray", "rgb_last", "features"])
def test_npz_layouts(tmp_path, layout):
    rng = np.random.default_rng(0)
    shapes = {"gray": (10, 6, 6), "rgb_last": (10, 6, 6, 3), "features": (10, 5)}
    make = (lambda s: rng.random(s).astype(np.float32)) if layout == "features" else (
        lambda s: rng.integers(0, 256, s).astype(np.uint8))
    np.savez(tmp_path / "d.npz", x_train=make(shapes[layout]), y_train=np.arange(10) % 3,
             x_test=make((4,) + shapes[layout][1:]), y_test=np.arange(4) % 3)
    ds = load_dataset("npz", path=str(tmp_path / "d.npz"))
    expected = {"gray": (1, 6, 6), "rgb_last": (3, 6, 6), "features": (5,)}[layout]
    assert ds.input_shape == expected and ds.num_classes == 3
    assert ds.train.inputs(torch.arange(2)).dtype == torch.float32


def test_npz_errors(tmp_path):
    with pytest.raises(DataError, match="needs a file"):
        load_dataset("npz")
    np.savez(tmp_path / "bad.npz", x_train=np.zeros((2, 3), np.float32))
    with pytest.raises(DataError, match="missing arrays"):
        load_dataset("npz", path=str(tmp_path / "bad.npz"))
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="cannot read"):
        load_dataset("npz", path=str(tmp_path / "junk.npz"))


def test_imagefolder_decodes_once_and_caches(tmp_path):
    from PIL import Image

    for split, n in (("train", 3), ("val", 1)):
        for c, colour in (("cat", (255, 0, 0)), ("dog", (0, 0, 255))):
            d = tmp_path / "afhq" / split / c
            d.mkdir(parents=True)
            for i in range(n):
                Image.new("RGB", (20, 14), colour).save(d / f"{i}.png")
    ds = load_dataset("imagefolder", path=str(tmp_path / "afhq"), size=8)
    assert ds.input_shape == (3, 8, 8) and len(ds.train) == 6 and len(ds.test) == 2
    assert ds.class_names == ("cat", "dog")
    cat = ds.train.x[ds.train.y == 0][0]
    assert cat[0].float().mean() > 250 and cat[2].float().mean() < 5
    cached = list((tmp_path.parent).rglob("imagefolder/*.pt")) or list(__import__("pathlib").Path(
        __import__("os").environ["UNLEARNKIT_CACHE"]).rglob("*.pt"))
    assert cached, "decoded tensors should be cached"
    cached[0].write_bytes(b"corrupted")  # a broken cache is rebuilt, not trusted
    assert len(load_dataset("imagefolder", path=str(tmp_path / "afhq"), size=8).train) == 6


def test_unknown_dataset_lists_valid_names():
    with pytest.raises(KeyError, match="fashion-mnist"):
        load_dataset("no-such-data")
