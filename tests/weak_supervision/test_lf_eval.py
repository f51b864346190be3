"""Keyword and regex functions on awkward input, without a database."""

import time

import pytest

from weak_supervision.lf_eval import (
    LFConfigError,
    LFTooSlow,
    classifier_vote,
    compile_lf,
    normalize_config,
)

LABELS = ["spam", "ham"]


def _keyword(**config):
    clean = normalize_config(kind="keyword", config={"label": "spam", **config}, labels=LABELS)
    return compile_lf(key=1, kind="keyword", config=clean, labels=LABELS)


def _regex(pattern, timeout=0.05, **config):
    clean = normalize_config(
        kind="regex", config={"label": "spam", "pattern": pattern, **config}, labels=LABELS
    )
    return compile_lf(key=1, kind="regex", config=clean, labels=LABELS, timeout=timeout)


def test_keywords_match_whole_words_case_insensitively():
    lf = _keyword(keywords=["win", "£", "free entry"])
    assert lf.vote("You WIN a prize") == "spam"
    assert lf.vote("a glass of wine") is None  # not a whole word
    assert lf.vote("only £100") == "spam"  # a keyword that is punctuation still matches
    assert lf.vote("FREE  ENTRY") is None  # two spaces: not the phrase
    assert lf.vote("Free entry today") == "spam"


def test_keywords_accept_a_comma_or_newline_separated_string_and_drop_blanks():
    clean = normalize_config(
        kind="keyword", config={"label": "spam", "keywords": "a, b\n\n c,"}, labels=LABELS
    )
    assert clean["keywords"] == ["a", "b", "c"]


def test_keywords_with_regex_metacharacters_are_literal():
    lf = _keyword(keywords=["c++", "(a+)+"], whole_word=False)
    assert lf.vote("I write c++") == "spam"
    assert lf.vote("aaaa") is None
    assert lf.vote("see (a+)+ here") == "spam"


def test_empty_text_abstains():
    assert _keyword(keywords=["x"]).vote("") is None
    assert _regex(r"^$").vote("") == "spam"  # a pattern that matches emptiness is obeyed


def test_huge_text_is_scanned_to_the_end():
    text = "hello " * 500_000 + "jackpot"
    assert _keyword(keywords=["jackpot"]).vote(text) == "spam"
    assert _regex(r"jack\w+").vote(text) == "spam"


@pytest.mark.parametrize(
    ("pattern", "field"),
    [("(unclosed", "pattern"), ("", "pattern"), ("a{2,1}", "pattern"), ("x" * 3000, "pattern")],
)
def test_invalid_patterns_are_rejected_with_the_field(pattern, field):
    with pytest.raises(LFConfigError) as info:
        normalize_config(kind="regex", config={"label": "spam", "pattern": pattern}, labels=LABELS)
    assert info.value.field == field


def test_a_label_outside_the_set_is_rejected():
    with pytest.raises(LFConfigError) as info:
        normalize_config(kind="keyword", config={"label": "eggs", "keywords": ["x"]}, labels=LABELS)
    assert info.value.field == "label"
    assert "eggs" in info.value.message


def test_catastrophic_backtracking_times_out_per_text_and_abstains():
    lf = _regex(r"(x|xx)+y", timeout=0.05)
    started = time.monotonic()
    assert lf.vote("x" * 5000) is None
    assert time.monotonic() - started < 5  # bounded, not exponential
    assert lf.stats.timeouts == 1
    assert lf.vote("xxy") == "spam"


def test_a_pattern_that_times_out_everywhere_is_stopped():
    lf = _regex(r"(a|aa)+$", timeout=0.01)
    texts = ["a" * 80 + "b"] * 100
    with pytest.raises(LFTooSlow, match="timed out"):
        lf.vote_many(texts)
    assert lf.stats.timeouts >= 20


def test_python_function_errors_and_bad_labels_abstain_and_are_counted():
    def flaky(text):
        if text == "boom":
            raise ValueError("bad")
        return "eggs" if text == "eggs" else "ham"

    lf = compile_lf(key=1, kind="python", config={"function": "f"}, labels=LABELS, function=flaky)
    assert lf.vote_many(["boom", "eggs", "ok"]) == [None, None, "ham"]
    assert lf.stats.errors == 1
    assert lf.stats.invalid == 1
    assert "ValueError" in lf.stats.first_error


def test_classifier_vote_needs_the_threshold_and_the_named_label():
    assert classifier_vote(labels=["spam"], confidence=0.95, threshold=0.9, label=None) == "spam"
    assert classifier_vote(labels=["spam"], confidence=0.85, threshold=0.9, label=None) is None
    assert classifier_vote(labels=["ham"], confidence=0.99, threshold=0.9, label="spam") is None
    assert classifier_vote(labels=[], confidence=0.99, threshold=0.9, label=None) is None
