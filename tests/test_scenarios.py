"""Bad deletion requests are refused with a clear error before any model is touched."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from unlearnkit.data import ForgetRequest, read_ids_file, select_forget_ids, validate_forget_ids
from unlearnkit.errors import ConfigError, ForgetRequestError

G = torch.Generator


def check(ids, base, **kw):
    return validate_forget_ids(torch.as_tensor(ids), base.train, len(base.train.pool), **kw)


def test_valid_request_is_sorted(toy_base):
    base, _ = toy_base
    ids = base.train.ids[[5, 2, 9]]
    assert torch.equal(check(ids, base), torch.sort(ids).values)


@pytest.mark.parametrize("ids, message", [
    ([], "empty"),
    ([10**7], "out of range"),
    ([-1], "out of range"),
    ([1.5], "integers"),
])
def test_malformed_requests(toy_base, ids, message):
    base, _ = toy_base
    with pytest.raises(ForgetRequestError, match=message):
        check(torch.tensor(ids) if ids else torch.tensor([], dtype=torch.int64), base)


def test_duplicates_validation_ids_whole_set_and_emptied_class(toy_base):
    base, _ = toy_base
    t = base.train.ids
    with pytest.raises(ForgetRequestError, match="duplicate"):
        check(torch.cat([t[:3], t[:1]]), base)
    with pytest.raises(ForgetRequestError, match="not in the training set"):
        check(base.val.ids[:2], base)
    with pytest.raises(ForgetRequestError, match="whole training set"):
        check(t, base)
    cls0 = t[base.train.labels == 0]
    with pytest.raises(ForgetRequestError, match=r"class\(es\) \[0\]"):
        check(cls0, base)
    assert len(check(cls0, base, named_class=0)) == len(cls0)


def test_scenarios(toy_base, tmp_path):
    base, _ = toy_base
    random_ids = select_forget_ids(base.train, ForgetRequest(fraction=0.2), generator=G().manual_seed(0))
    assert abs(len(random_ids) - 0.2 * len(base.train)) <= 1
    assert len(select_forget_ids(base.train, ForgetRequest(count=17), generator=G())) == 17
    cls = select_forget_ids(base.train, ForgetRequest(scenario="class", forget_class=2), generator=G())
    assert (base.train.pool.y[cls] == 2).all() and len(cls) == (base.train.labels == 2).sum()
    with pytest.raises(ForgetRequestError, match="does not exist"):
        select_forget_ids(base.train, ForgetRequest(scenario="class", forget_class=9), generator=G())
    with pytest.raises(ForgetRequestError, match="needs forget.forget_class"):
        select_forget_ids(base.train, ForgetRequest(scenario="class"), generator=G())
    with pytest.raises(KeyError, match="random"):
        select_forget_ids(base.train, ForgetRequest(scenario="nope"), generator=G())
    with pytest.raises(ConfigError):
        ForgetRequest(fraction=1.5)
    f = tmp_path / "ids.txt"
    f.write_text(f"# ids to delete\n{int(base.train.ids[0])}, {int(base.train.ids[1])}\n{int(base.train.ids[2])}\n")
    got = select_forget_ids(base.train, ForgetRequest(scenario="ids", ids_file=str(f)), generator=G())
    assert torch.equal(got, torch.sort(base.train.ids[:3]).values)


def test_ids_file_formats_and_errors(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps([3, 1, 2]))
    np.save(tmp_path / "a.npy", np.array([4, 5]))
    assert read_ids_file(tmp_path / "a.json").tolist() == [3, 1, 2]
    assert read_ids_file(tmp_path / "a.npy").tolist() == [4, 5]
    (tmp_path / "bad.txt").write_text("1\n2\nthree\n")
    with pytest.raises(ForgetRequestError, match=r"bad.txt:3: 'three'"):
        read_ids_file(tmp_path / "bad.txt")
    (tmp_path / "bad.json").write_text('["a"]')
    with pytest.raises(ForgetRequestError, match="list of integers"):
        read_ids_file(tmp_path / "bad.json")
    with pytest.raises(ForgetRequestError, match="not found"):
        read_ids_file(tmp_path / "missing.txt")
