"""Table text: failure messages shortened at a word boundary, never mid-word; rows named as the papers
name the methods."""
from unlearnkit.report.table import display_name, short


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
