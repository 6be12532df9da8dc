"""Table text: failure messages shortened at a word boundary, never mid-word; rows named as the papers
name the methods; rows that ran at different commits say which."""
from unlearnkit.report.table import display_name, short, versions_note


def test_short_messages_are_kept_whole():
    assert short("non-finite loss (nan) in ga") == "non-finite loss (nan) in ga"


def test_long_messages_are_cut_between_words_with_an_ellipsis():
    msg = "non-finite loss (nan) in neggrad+ at step 104/760; lower the learning rate (now 0.005000000000000001)"
    out = short(msg, 80)
    assert out.endswith(" …") and len(out) <= 80
    assert msg.startswith(out[:-2]) and msg[len(out) - 2] == " ", "cut must fall on a space"


def test_a_single_overlong_word_is_still_shown():
    assert short("x" * 300, 50) == "x" * 48 + " …"


def test_rows_are_named_as_the_papers_spell_the_methods():
    names = {label: display_name(label) for label in ("salun", "scrub", "neggrad+", "dau", "dau-nobt", "ff", "l1-sparse")}
    assert names == {"salun": "SalUn", "scrub": "SCRUB", "neggrad+": "NegGrad+", "dau": "DAU",
                     "dau-nobt": "DAU (no BT)", "ff": "FF", "l1-sparse": "l1-sparse"}


def _row(label, version):
    return {"row": label, "code_version": version}


def test_one_code_version_adds_no_line():
    assert versions_note([_row("retrain", "0.1.0+g47a72df14f14"), _row("ga", "0.1.0+g47a72df14f14")]) == ""


def test_rows_at_different_commits_are_named_by_commit():
    note = versions_note([_row("retrain", "0.1.0+g47a72df14f14"), _row("ga", "0.1.0+g47a72df14f14"),
                          _row("ga (selected)", "0.1.0+g88bda5b00000.dirty"), _row("salun", None)])
    assert note.strip() == ("Rows ran at different code versions — `47a72df`: Retrain, GA; "
                            "`88bda5b.dirty`: GA (selected); `unknown`: SalUn.")


def test_a_row_whose_seeds_ran_at_two_commits_names_both():
    note = versions_note([_row("ga", "0.1.0+g47a72df14f14"), _row("ga", "0.1.0+g88bda5b00000"),
                          _row("rl", "0.1.0+g47a72df14f14")])
    assert "`47a72df, 88bda5b`: GA" in note and "`47a72df`: RL" in note
