"""Failure messages in the tables are shortened at a word boundary, never mid-word."""
from unlearnkit.report.table import short


def test_short_messages_are_kept_whole():
    assert short("non-finite loss (nan) in ga") == "non-finite loss (nan) in ga"


def test_long_messages_are_cut_between_words_with_an_ellipsis():
    msg = "non-finite loss (nan) in neggrad+ at step 104/760; lower the learning rate (now 0.005000000000000001)"
    out = short(msg, 80)
    assert out.endswith(" …") and len(out) <= 80
    assert msg.startswith(out[:-2]) and msg[len(out) - 2] == " ", "cut must fall on a space"


def test_a_single_overlong_word_is_still_shown():
    assert short("x" * 300, 50) == "x" * 48 + " …"
