"""glae_st.evaluation: the decode-fidelity metrics of the decode benchmark and of the training evaluator, against
hand-computed values."""

from __future__ import annotations

import pytest

from glae_st.evaluation import exact_match, token_f1, token_recall, words


def test_tokenize_splits_words_and_punctuation_lower_cased():
    assert words("Don't stop, Bob!") == ["don", "'", "t", "stop", ",", "bob", "!"]


@pytest.mark.parametrize(
    ("prediction", "reference", "expected"),
    [
        ("The cat sat.", "the cat sat on the mat", 0.6),  # 3 common of 4 predicted and 6 reference tokens
        ("the the the", "the cat", 0.4),  # repeats count once per reference occurrence: P = 1/3, R = 1/2
        ("sat cat the", "the cat sat", 1.0),  # a bag of tokens: order is ignored
        ("dogs bark", "the cat sat", 0.0),
        ("", "", 1.0),
        ("", "the cat", 0.0),
    ],
)
def test_token_f1_matches_hand_computed_values(prediction: str, reference: str, expected: float):
    assert token_f1(prediction, reference) == pytest.approx(expected)


def test_token_recall_counts_the_reference_words_that_come_back():
    assert token_recall("the cat the dog and more words", "The cat sat, the end.") == pytest.approx(3 / 7)
    assert token_recall("", "a b") == 0.0
    assert token_recall("anything", "") == 1.0


def test_exact_match_ignores_whitespace_runs_but_not_case():
    assert exact_match("  The cat\n sat. ", "The cat sat.")
    assert not exact_match("the cat sat.", "The cat sat.")
    assert not exact_match("The cat sat", "The cat sat.")
