"""End to end on tiny data: `unlearnkit damage`, `unlearnkit heal` and `run --scenario adversarial:*`."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from unlearnkit.cli import main

from .test_cli import TINY

TINY_ADV = TINY + ["data.val_fraction=0.1", "reserve=100", "budgets=[0.1]", "seeds=[0]"]


def records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]


def test_damage_then_heal_record_tables_and_resume(tmp_path, capsys):
    damage = tmp_path / "damage"
    args = ["damage", *TINY_ADV, "--strategies", "random,class,typical", "--methods", "ft,ga", "--out", str(damage)]
    assert main(args) == 0
    recs = records(damage)
    assert len(recs) == 3 * 4  # strategies × (original, gold standard, ft, ga)
    for r in recs:
        assert r["status"] == "ok" and r["n_train"] == 440 and r["n_forget"] == round(r["budget"] * 440)
        assert r["damage"] == pytest.approx(r["ta_original"] - r["metrics"]["TA"])
        assert r["excess_damage"] == pytest.approx(r["ta_gold"] - r["metrics"]["TA"])
    gold = [r for r in recs if r["row"] == "retrain"]
    assert all(r["excess_damage"] == 0 for r in gold)
    printed = capsys.readouterr().out
    for needle in ("#### Budget 10%: test accuracy", "| Gold Standard (retrain) |", "excess damage (Gold Standard − method)",
                   "Worst strategy at 10%", "TA against budget", "`typical` (predictions)", "`random` (data)"):
        assert needle in printed
    table = (damage / "table.md").read_text()
    try:
        import matplotlib  # noqa: F401
        assert (damage / "damage.png").stat().st_size > 1000 and "damage.png" in table
    except ImportError:
        assert "matplotlib is not installed" in table
    # a rerun skips everything; a new budget adds only its own rows
    assert main(args) == 0 and len(records(damage)) == 12
    assert main([*args, "budgets=[0.05,0.1]", "--strategies", "random"]) == 0
    assert len(records(damage)) == 16

    # heal after the worst strategy at 10%, as the damage records say
    by = {}
    for r in recs:
        if r["budget"] == 0.1 and r["row"] != "original":
            by.setdefault(r["strategy"], []).append(r["damage"])
    worst = max(by, key=lambda s: sum(by[s]) / len(by[s]))
    heal = tmp_path / "heal"
    variants = ("heal.variants=[{name: rem, data: remaining, epochs: one}, {name: tw, data: twins, similarity: cosine, "
                "epochs: one}, {name: rnd, data: random, epochs: one, methods: [ft]}]")
    hargs = ["heal", *TINY_ADV, "--methods", "ft", f"heal.damage_dir={damage}", variants, "--out", str(heal)]
    assert main(hargs) == 0
    hrecs = records(heal)
    assert {r["strategy"] for r in hrecs} == {worst}
    assert sorted((r["method"], r["variant"] or "") for r in hrecs) == sorted(
        [("retrain", ""), ("retrain", "rem"), ("retrain", "tw"), ("ft", ""), ("ft", "rem"), ("ft", "tw"), ("ft", "rnd")])
    twins = next(r for r in hrecs if r["variant"] == "tw")
    assert twins["n_replacements"] > 0 and twins["index_seconds"] > 0 and twins["time_vs_retrain"] > 0
    assert all(r["vs_gold"] == pytest.approx(r["metrics"]["TA"] - r["ta_gold"]) for r in hrecs if r["variant"])
    printed = capsys.readouterr().out
    for needle in (f"### Healing after `{worst}` requests of 10%", "Healed TA − Gold Standard TA", "| FT |",
                   "`tw` = D_r + twins (cosine), 1 epoch", "healing time / retrain time"):
        assert needle in printed
    assert main(hargs) == 0 and len(records(heal)) == 7
    # `unlearnkit report` prints both tables again from the records alone
    capsys.readouterr()
    assert main(["report", str(damage), str(heal)]) == 0
    printed = capsys.readouterr().out
    assert "#### Budget 10%: test accuracy" in printed and f"### Healing after `{worst}` requests of 10%" in printed


def test_sisa_damage_is_measured_from_its_own_ensemble(tmp_path, capsys, caplog):
    damage = tmp_path / "damage"
    args = ["damage", *TINY_ADV, "--strategies", "class", "--methods", "sisa", "params.sisa.shards=2",
            "params.sisa.slices=1", "--out", str(damage)]
    assert main(args) == 0
    recs = {r["row"]: r for r in records(damage)}
    sisa = recs["sisa"]
    assert "ta_start" not in recs["retrain"] and "ta_start" not in recs["original"]
    assert 0 < sisa["ta_start"] <= 100
    assert sisa["damage"] == pytest.approx(sisa["ta_start"] - sisa["metrics"]["TA"])
    assert sisa["excess_damage"] == pytest.approx(sisa["ta_gold"] - sisa["metrics"]["TA"])
    text = capsys.readouterr().out
    assert "| SISA before deletion |" in text and "SISA: damage (its own original before deletion − after)" in text
    assert "SISA unlearns from an ensemble of its own" in text
    assert "was not in the cache" not in caplog.text  # start_model found the ensemble unlearn started from


def test_heal_without_damage_records_or_with_bad_settings_refuses(tmp_path, capsys):
    out = tmp_path / "heal"
    assert main(["heal", *TINY_ADV, f"heal.damage_dir={tmp_path / 'none'}", "--out", str(out)]) == 2
    assert "run `unlearnkit damage` first" in capsys.readouterr().err
    for bad, message in [("heal.variants=[{name: a, data: twins, similarity: manhattan}]", "similarity must be one of"),
                         ("heal.strategy=nope", "heal.strategy must be 'worst' or one of"),
                         ("heal.lr_share=0", "heal.lr_share must be > 0"),
                         ("budgets=[1.5]", "neither a fraction"),
                         ("adversary.coverage.space=voxels", "coverage.space must be one of")]:
        assert main(["heal", *TINY_ADV, bad, "--out", str(out)]) == 2
        assert message in capsys.readouterr().err
    assert not (out / "records.jsonl").exists()


def test_run_with_an_adversarial_scenario(tmp_path, capsys, caplog):
    out = tmp_path / "adv"
    base = ["run", *TINY, "--seeds", "0", "--methods", "ft", "noise_floor=false", "attacks=false", "--out", str(out)]
    assert main([*base, "--scenario", "adversarial:nope"]) == 2
    assert "unknown adversary 'nope'" in capsys.readouterr().err and not out.exists()
    assert main([*base, "--scenario", "adversarial:class", "--forget-class", "2", "forget.fraction=0.05"]) == 0
    recs = records(out)
    assert {r["row"] for r in recs} == {"original", "retrain", "ft"}
    assert recs[0]["n_forget"] == round(0.05 * 540) and recs[0]["config"]["forget"]["scenario"] == "adversarial:class"
    assert main(["ls", "adversaries"]) == 0
    assert "adversaries: boundary, class, coverage, gradnorm, influence, random, typical" in capsys.readouterr().out


def rec(seed, strategy, row, ta, model="mlp"):
    """A hand-made damage record (what the report reads of one)."""
    return {"key": f"{model}-{seed}-{strategy}-{row}", "experiment": model, "status": "ok", "seed": seed,
            "strategy": strategy, "budget": 0.1, "row": row, "knowledge": "data", "metrics": {"TA": ta},
            "damage": 90.0 - ta, "excess_damage": 0.0, "ta_original": 90.0, "n_train": 100,
            "config": {"data": {"name": "toy"}, "model": {"name": model, "options": {}}, "train": {"epochs": 1},
                       "reserve": 10}}


def test_report_gives_each_experiment_of_a_damage_folder_its_own_table(tmp_path, capsys):
    folder = tmp_path / "damage"
    folder.mkdir()
    lines = [rec(0, "random", row, 89.0, model) for model in ("mlp", "cnn") for row in ("original", "retrain")]
    (folder / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    assert main(["report", str(folder)]) == 0
    printed = capsys.readouterr().out
    assert printed.count("### Adversarial deletion requests") == 2 and "toy · mlp" in printed and "toy · cnn" in printed


def test_damage_table_says_how_many_seeds_each_strategy_averages():
    from unlearnkit.report.adversarial import damage_report

    records = [rec(s, "random", row, 89.0 + s) for s in (0, 1, 2) for row in ("original", "retrain")]
    records += [rec(0, "class", row, 80.0) for row in ("original", "retrain")]
    text = damage_report(records)
    assert "| | random (3 seeds) | class (1 seed) |" in text
    even = damage_report([r for r in records if r["strategy"] == "random"])
    assert "| | random |" in even and "hurt beyond random" not in even


def test_damage_table_pairs_each_strategy_with_random_by_seed():
    from unlearnkit.report.adversarial import damage_report

    records = [rec(s, "random", "retrain", 90.0 + s) for s in (0, 1, 2)]
    records += [rec(s, "class", "retrain", 85.0 + 2 * s) for s in (0, 1)]  # seed 2 ran random only
    text = damage_report(records)
    assert "hurt beyond random" in text
    assert "| Gold Standard (retrain) | 4.50 ± 6.35 |" in text  # (5 + 4) / 2, paired by seed; t(1) = 12.71


def test_heal_table_says_how_many_seeds_each_variant_averages():
    from unlearnkit.report.adversarial import heal_report

    def heal_rec(seed, method, variant):
        r = rec(seed, "class", method, 85.0)
        settings = None if variant is None else {"name": variant, "data": "remaining", "similarity": "euclidean",
                                                 "epochs": "half"}
        return {**r, "method": method, "variant": variant, "variant_settings": settings, "n_forget": 10,
                "ta_gold": 85.0, "vs_gold": 0.0, "time_vs_retrain": 0.5, "index_seconds": None}
    records = [heal_rec(s, "retrain", v) for s in (0, 1, 2) for v in (None, "main")] + [heal_rec(0, "retrain", "extra")]
    assert "| main (3 seeds) | extra (1 seed) |" in heal_report(records)
    assert "| main |" in heal_report([r for r in records if r["variant"] != "extra"])
    assert "forgotten (UA" not in heal_report(records), "records without UA get no UA table"
    with_ua = [{**r, "metrics": {**r["metrics"], "UA": 50.0 + r["seed"]}} for r in records if r["variant"] != "extra"]
    assert "| Gold Standard (retrain) | 51.00 ± 2.48 | 51.00 ± 2.48 |" in heal_report(with_ua)


def test_damage_table_shows_how_much_of_the_request_each_row_forgot():
    """A method that keeps the requested samples keeps their TA: its excess damage is negative. The UA
    table beside it shows that (here GA's 20 against the Gold Standard's 100)."""
    from unlearnkit.report.adversarial import damage_report

    def with_ua(r, ua):
        return {**r, "metrics": {**r["metrics"], "UA": ua}}
    records = [with_ua(rec(s, "class", "original", 90.0), 10.0 + s) for s in (0, 1)]
    records += [with_ua(rec(s, "class", "retrain", 85.0), 100.0) for s in (0, 1)]
    records += [with_ua(rec(s, "class", "ga", 89.0), 20.0) for s in (0, 1)] + [rec(0, "class", "ft", 86.0)]
    text = damage_report(records)
    assert "the requested samples forgotten (UA" in text
    assert "| Original | 10.50 ± 6.35 |" in text and "| Gold Standard (retrain) | 100.00 ± 0.00 |" in text
    assert "| GA | 20.00 ± 0.00 |" in text and "| FT | — |" in text
    assert "forgotten (UA" not in damage_report([rec(s, "class", "retrain", 85.0) for s in (0, 1)])


def test_damage_table_leaves_out_sisa_records_from_before_its_own_start_was_measured():
    from unlearnkit.report.adversarial import damage_report

    old, new = rec(0, "random", "sisa", 80.0), rec(1, "random", "sisa", 85.0)
    new.update(ta_start=88.0, damage=3.0)
    records = [rec(s, "random", row, 89.0) for s in (0, 1) for row in ("original", "retrain")] + [old, new]
    text = damage_report(records)
    assert "| SISA before deletion | 88.00 (1 seed) |" in text and "| SISA | 85.00 (1 seed) |" in text


def test_damage_and_heal_tables_keep_a_methods_settings_apart():
    """A method rerun under a changed default (IU's retain guard) gets its own row beside the old
    records, in the damage table and in the healing table, never their mean."""
    from unlearnkit.report.adversarial import damage_report, heal_report

    old = [{**rec(s, "class", "iu", 10.0), "params": {"alpha": 9.0}} for s in (0, 1)]
    new = [{**rec(s, "class", "iu", 88.0), "params": {"alpha": 9.0, "retain_guard": 5.0}} for s in (0, 1)]
    base = [rec(s, "class", row, 89.0) for s in (0, 1) for row in ("original", "retrain")]
    text = damage_report(base + old + new)
    assert "| iu (retain_guard=None) | 10.00 ± 0.00 |" in text and "| iu (retain_guard=5.0) | 88.00 ± 0.00 |" in text
    assert "49.00" not in text  # the mean of the two settings

    def healed(r):
        return {**r, "method": r["row"], "variant": None, "variant_settings": None, "n_forget": 10, "ta_gold": 89.0,
                "vs_gold": r["metrics"]["TA"] - 89.0, "time_vs_retrain": None, "index_seconds": None}
    heal = heal_report([healed(r) for r in old + new])
    assert "| iu (retain_guard=None) | 89.00 ± 0.00 | 10.00 ± 0.00 |" in heal
    assert "| iu (retain_guard=5.0) | 89.00 ± 0.00 | 88.00 ± 0.00 |" in heal


def test_damage_and_heal_tables_name_the_commits_their_rows_ran_at():
    """A folder added to after the code changed (Gold Standard rows reused, methods rerun) says which
    rows ran at which commit, as the run table does; one commit adds no line."""
    from unlearnkit.report.adversarial import damage_report, heal_report

    def at(r, sha):
        return {**r, "code_version": f"0.1.0+g{sha}"}
    base = [at(rec(s, "class", row, 89.0), "adfbdaf0000") for s in (0, 1) for row in ("original", "retrain")]
    ga = [at(rec(s, "class", "ga", 88.0), "5ed8ac60000") for s in (0, 1)]
    assert "Rows ran at different code versions — `adfbdaf`: Original, Gold Standard (retrain); `5ed8ac6`: GA." \
        in damage_report(base + ga)
    assert "different code versions" not in damage_report(base)

    def healed(r):
        return {**r, "method": r["row"], "variant": None, "variant_settings": None, "n_forget": 10, "ta_gold": 89.0,
                "vs_gold": 0.0, "time_vs_retrain": None, "index_seconds": None}
    heal = heal_report([healed(r) for r in base + ga if r["row"] != "original"])
    assert "Rows ran at different code versions — `adfbdaf`: Gold Standard (retrain); `5ed8ac6`: GA." in heal
