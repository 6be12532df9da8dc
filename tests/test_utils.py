"""utils/: atomic writes, named seeds, proportional quotas."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch

from unlearnkit.utils.files import write_atomic
from unlearnkit.utils.sampling import largest_remainder, random_positions
from unlearnkit.utils.seeding import derive_seed


def test_write_atomic_text_bytes_and_callbacks(tmp_path):
    write_atomic(tmp_path / "a" / "t.txt", "héllo")
    assert (tmp_path / "a" / "t.txt").read_text(encoding="utf-8") == "héllo"
    write_atomic(tmp_path / "b.bin", b"\x00\x01")
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    write_atomic(tmp_path / "c.npy", lambda p: np.save(p, np.arange(3)))
    write_atomic(tmp_path / "d.npz", lambda p: np.savez_compressed(p, x=np.arange(2)))
    write_atomic(tmp_path / "e.pt", lambda p: torch.save({"w": torch.ones(2)}, p))
    assert np.load(tmp_path / "c.npy").tolist() == [0, 1, 2]
    assert np.load(tmp_path / "d.npz")["x"].tolist() == [0, 1]
    assert torch.load(tmp_path / "e.pt")["w"].tolist() == [1.0, 1.0]
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["b.bin", "c.npy", "d.npz", "e.pt", "t.txt"]


def test_write_atomic_failure_keeps_the_old_file(tmp_path):
    path = tmp_path / "f.txt"
    write_atomic(path, "old")

    def broken(p):
        p.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomic(path, broken)
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_derive_seed_is_the_recorded_definition():
    parts = (0, "init", 3)
    assert derive_seed(*parts) == int(hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:15], 16)
    assert derive_seed(0, "plan") != derive_seed(1, "plan")


def test_largest_remainder_is_exact_and_proportional():
    assert largest_remainder(torch.tensor([5, 3, 2]), 5).tolist() == [3, 1, 1]
    assert largest_remainder(torch.tensor([1, 1, 1]), 2).tolist() == [1, 1, 0]  # ties: earlier group
    assert int(largest_remainder(torch.tensor([7, 0, 13, 4]), 9).sum()) == 9


def test_random_positions_draws_one_permutation():
    a = random_positions(10, 4, torch.Generator().manual_seed(0))
    b = torch.randperm(10, generator=torch.Generator().manual_seed(0))[:4]
    assert torch.equal(a, b) and len(set(a.tolist())) == 4
