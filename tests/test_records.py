from __future__ import annotations

from unlearnkit.experiments.records import RecordStore


def test_append_and_read(tmp_path):
    s = RecordStore(tmp_path)
    s.append({"key": "a", "v": 1})
    s.append({"key": "b", "v": float("nan")})
    assert [r["key"] for r in s] == ["a", "b"] and s.keys() == {"a", "b"}
    assert s.get("a")["v"] == 1


def test_interrupted_write_loses_nothing(tmp_path, caplog):
    s = RecordStore(tmp_path)
    s.append({"key": "a"})
    with open(s.path, "a") as f:
        f.write('{"key": "half')  # a crash mid-line
    assert [r["key"] for r in s] == ["a"]
    s.append({"key": "b"})
    assert [r["key"] for r in s] == ["a", "b"]
    assert "damaged record" in caplog.text
    assert s.path.read_text().splitlines()[0] == '{"key": "a"}'
