"""How faithfully embeddings decode back into text, by text length: exact match, token F1, BLEU, chrF.

The texts are held out from GLAE training: sentences of the Lee background news corpus and runs of 2, 4, 8, 16 or
32 consecutive sentences of one article, bucketed by their length in backbone (SmolLM2) tokens. Each system is an
embedder with the decoder that inverts it (:class:`Autoencoder`), so the trained GLAE default, GLAE before training
and later alternatives are measured on the same texts. Optionally Gaussian noise is added to the embeddings before
decoding, to see how fidelity degrades with distance from the encoded point.

Writes ``<output-dir>/decode_accuracy.json`` and a plot ``<output-dir>/decode_accuracy.png``.

Examples (from the repository root)::

    python -m benchmarks.decode_accuracy                       # GLAE default and untrained GLAE, 100 texts per bucket
    python -m benchmarks.decode_accuracy --limit 10 --noise 0 0.1 0.3
    python -m benchmarks.decode_accuracy --models runs/smollm2-default/final glae
    python -m benchmarks.decode_accuracy --models glae --reuse benchmarks/results/decode/decode_accuracy.json
"""

from __future__ import annotations

import argparse
import bisect
import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import sacrebleu
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter
from sentence_transformers import SentenceTransformer
from tqdm.auto import tqdm
from transformers import AutoTokenizer, PreTrainedTokenizerBase

import glae_st
from benchmarks.common import (
    GLAE,
    GLAE_UNTRAINED,
    command_line,
    display_name,
    lee_articles,
    load_glae,
    machine_info,
    results_dir,
    smollm2_folder,
    write_json,
)
from glae_st.atomic import atomic_path
from glae_st.corpora import split_sentences
from glae_st.evaluation import exact_match, token_f1
from glae_st.util import resolve_decoding

BUCKETS = (8, 16, 32, 64, 128, 256)
"""Upper bounds (inclusive) of the length buckets, in backbone tokens; a bucket holds lengths above the previous bound."""
RUN_LENGTHS = (1, 2, 4, 8, 16, 32)
"""Numbers of consecutive sentences of one article that make up a text."""
DEFAULT_TEXTS_PER_BUCKET = 100
DEFAULT_MODELS = [GLAE, GLAE_UNTRAINED]
"""Scored when ``--models`` is not given: the trained default and the same model before training."""
EXAMPLES_PER_BUCKET = 3
SHORT_TEXT_TOKENS = 32
"""Texts of at most this many tokens are also scored together (``"short"``): the first fidelity bar is set on them."""


@dataclass(frozen=True)
class HeldOutText:
    """A held-out text, its length in backbone tokens and the length bucket it falls in."""

    text: str
    n_tokens: int
    bucket: int


@dataclass(frozen=True)
class Autoencoder:
    """An embedder and the decoder that inverts it: one system of the benchmark.

    Attributes:
        name: Label in results and plots.
        encode: Texts to an (n, dim) array.
        decode: An (n, dim) array and a token budget (``max_new_tokens``) to texts.
        vectors_per_text: How many vectors one text is stored in (for the compression ratio).
    """

    name: str
    encode: Callable[[list[str]], np.ndarray]
    decode: Callable[[np.ndarray, int], list[str]]
    vectors_per_text: int = 1


def glae_autoencoder(model: SentenceTransformer, name: str, batch_size: int = 16, **setting: int) -> Autoencoder:
    """A GLAE SentenceTransformer as an :class:`Autoencoder` (raw, unnormalised embeddings), decoding with the
    ``setting`` given (``num_beams``, ``num_candidates``, ``refinement_steps`` of :func:`glae_st.decode`)."""

    def decode(embeddings: np.ndarray, max_new_tokens: int) -> list[str]:
        return glae_st.decode(model, embeddings, max_new_tokens=max_new_tokens, batch_size=batch_size, **setting)

    return Autoencoder(
        name=name, encode=partial(model.encode, batch_size=batch_size, show_progress_bar=True), decode=decode
    )


def decoding_setting(model: SentenceTransformer, args: argparse.Namespace) -> dict[str, int]:
    """The decode settings of a run: those given on the command line, else (with ``--model-decoding``) the model's
    own ``decoding``, else greedy."""
    return resolve_decoding(
        model[0].decoding if args.model_decoding else None,
        num_beams=args.num_beams,
        num_candidates=args.candidates,
        refinement_steps=args.refinement_steps,
    )


def setting_label(setting: dict[str, int]) -> str:
    """`` (beam B) (rerank K) (refine S)`` for the settings that differ from greedy decoding; empty for greedy."""
    return (
        (f" (beam {setting['num_beams']})" if setting["num_beams"] > 1 else "")
        + (f" (rerank {setting['num_candidates']})" if setting["num_candidates"] > 1 else "")
        + (f" (refine {setting['refinement_steps']})" if setting["refinement_steps"] > 0 else "")
    )


# ---------------------------------------------------------------------------------------------------- metrics
def fidelity(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """Exact match rate, mean token F1, and corpus-level BLEU and chrF (sacrebleu defaults, 0-100) of a set."""
    return {
        "n": len(references),
        "exact_match": float(np.mean([exact_match(p, r) for p, r in zip(predictions, references, strict=True)])),
        "token_f1": float(np.mean([token_f1(p, r) for p, r in zip(predictions, references, strict=True)])),
        "bleu": sacrebleu.corpus_bleu(list(predictions), [list(references)]).score,
        "chrf": sacrebleu.corpus_chrf(list(predictions), [list(references)]).score,
    }


# ---------------------------------------------------------------------------------------------------- data
def bucket_of(n_tokens: int) -> int | None:
    """The smallest bucket bound that is at least ``n_tokens``, or None for texts longer than the last bucket."""
    index = bisect.bisect_left(BUCKETS, n_tokens)
    return BUCKETS[index] if index < len(BUCKETS) else None


def held_out_texts(
    tokenizer: PreTrainedTokenizerBase,
    per_bucket: int,
    articles: Sequence[str] | None = None,
    seed: int = 0,
    split: str = "test",
) -> list[HeldOutText]:
    """Up to ``per_bucket`` held-out texts per length bucket, drawn at random (seeded), shortest bucket first.

    Candidates are the non-overlapping runs of :data:`RUN_LENGTHS` consecutive sentences of each article (by default
    the ``split`` articles of the Lee background news corpus, never used for training: ``"dev"`` to choose models
    and settings, ``"test"`` to report).
    """
    candidates: dict[str, None] = {}
    for article in articles if articles is not None else lee_articles(split):
        sentences = split_sentences(article)
        for length in RUN_LENGTHS:
            for start in range(0, len(sentences) - length + 1, length):
                candidates[" ".join(sentences[start : start + length])] = None
    by_bucket: dict[int, list[HeldOutText]] = {bucket: [] for bucket in BUCKETS}
    for text in candidates:
        n_tokens = len(tokenizer(text, add_special_tokens=False)["input_ids"])
        bucket = bucket_of(n_tokens)
        if bucket is not None:
            by_bucket[bucket].append(HeldOutText(text, n_tokens, bucket))
    rng = random.Random(seed)
    return [
        text for bucket in BUCKETS for text in rng.sample(by_bucket[bucket], min(per_bucket, len(by_bucket[bucket])))
    ]


def add_noise(embeddings: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """``e + sigma * rms(e) * z`` per vector, with ``z`` standard normal: noise relative to each vector's scale.

    ``rms(e)`` is the root mean square of the vector's coordinates, so ``sigma`` is the noise-to-signal ratio per
    coordinate, comparable across models whose embeddings differ in scale.
    """
    if sigma == 0:
        return embeddings
    rms = np.sqrt(np.mean(np.square(embeddings), axis=1, keepdims=True))
    return embeddings + sigma * rms * rng.standard_normal(embeddings.shape).astype(embeddings.dtype)


# ---------------------------------------------------------------------------------------------------- benchmark
def evaluate(
    autoencoder: Autoencoder,
    texts: Sequence[HeldOutText],
    noise_levels: Sequence[float] = (0.0,),
    max_new_tokens: int | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Encode the texts once, then for each noise level decode them and score fidelity per bucket and overall.

    Args:
        autoencoder: The system to measure.
        texts: Held-out texts (see :func:`held_out_texts`).
        noise_levels: Noise-to-signal ratios (see :func:`add_noise`); 0 decodes the embeddings as they are.
        max_new_tokens: Token budget of every decode; by default the bucket bound plus 16, enough for a faithful
            decode of every text in the bucket.
        seed: Seed of the noise.

    Returns:
        ``{str(sigma): {"buckets": {bound: metrics}, "short": metrics, "overall": metrics, "examples": {bound:
        [...]}}}``, where ``"short"`` scores all texts of at most :data:`SHORT_TEXT_TOKENS` tokens together; metrics
        include ``tokens_per_vector``, the compression ratio, and ``decode_seconds``, the wall time of the decodes.
    """
    references = [text.text for text in texts]
    embeddings = np.asarray(autoencoder.encode(references), dtype=np.float32)
    rng = np.random.default_rng(seed)
    results: dict[str, Any] = {}
    for sigma in noise_levels:
        vectors = add_noise(embeddings, sigma, rng)
        predictions = [""] * len(texts)
        buckets, examples, seconds = {}, {}, {}
        present = [bucket for bucket in BUCKETS if any(text.bucket == bucket for text in texts)]
        for bucket in tqdm(present, desc=f"Decoding {autoencoder.name} (σ={sigma:g}) by length bucket"):
            rows = [row for row, text in enumerate(texts) if text.bucket == bucket]
            started = time.perf_counter()
            decoded = autoencoder.decode(vectors[rows], max_new_tokens or bucket + 16)
            seconds[bucket] = time.perf_counter() - started
            for row, prediction in zip(rows, decoded, strict=True):
                predictions[row] = prediction
            buckets[str(bucket)] = {
                **_scores(decoded, [texts[row] for row in rows], autoencoder.vectors_per_text),
                "decode_seconds": seconds[bucket],
            }
            examples[str(bucket)] = [
                {"reference": references[row], "decoded": predictions[row]} for row in rows[:EXAMPLES_PER_BUCKET]
            ]
        short = [row for row, text in enumerate(texts) if text.n_tokens <= SHORT_TEXT_TOKENS]
        results[str(sigma)] = {
            "buckets": buckets,
            "short": {
                **_scores(
                    [predictions[row] for row in short], [texts[row] for row in short], autoencoder.vectors_per_text
                ),
                "decode_seconds": sum(spent for bound, spent in seconds.items() if bound <= SHORT_TEXT_TOKENS),
            },
            "overall": {
                **_scores(predictions, texts, autoencoder.vectors_per_text),
                "decode_seconds": sum(seconds.values()),
            },
            "examples": examples,
        }
    return results


def _scores(predictions: Sequence[str], texts: Sequence[HeldOutText], vectors_per_text: int) -> dict[str, float]:
    """:func:`fidelity` plus the mean text length and the compression ratio (text tokens per stored vector)."""
    mean_tokens = float(np.mean([text.n_tokens for text in texts]))
    return {
        **fidelity(predictions, [text.text for text in texts]),
        "mean_tokens": mean_tokens,
        "tokens_per_vector": mean_tokens / vectors_per_text,
    }


def plot(systems: dict[str, dict[str, Any]], path: Path) -> None:
    """Token F1 and chrF against text length (at no noise), token F1 against noise when several levels ran, and
    token F1 of the short texts against their decode time when several systems were timed (the cost of search)."""
    noise_levels = sorted({float(sigma) for result in systems.values() for sigma in result})
    clean = str(noise_levels[0])
    timed = {
        name: result[clean]["short"] for name, result in systems.items() if "decode_seconds" in result[clean]["short"]
    }
    extra = [panel for panel, wanted in (("noise", len(noise_levels) > 1), ("cost", len(timed) > 1)) if wanted]
    figure = Figure(figsize=(5 * (2 + len(extra)), 4), layout="constrained")
    axes = figure.subplots(1, 2 + len(extra))
    panel_of = {panel: axes[2 + index] for index, panel in enumerate(extra)}
    colours = {}
    for name, result in systems.items():
        buckets = result[clean]["buckets"]
        bounds = [int(bound) for bound in buckets]
        for axis, metric in zip(axes[:2], ("token_f1", "chrf"), strict=True):
            scale = 100 if metric == "token_f1" else 1
            (line,) = axis.plot(
                bounds, [scale * buckets[str(bound)][metric] for bound in bounds], marker="o", label=name
            )
            colours[name] = line.get_color()
        if "noise" in panel_of:
            overall = [100 * result[str(sigma)]["overall"]["token_f1"] for sigma in noise_levels]
            panel_of["noise"].plot(noise_levels, overall, marker="o", label=name)
    for axis, title in zip(axes[:2], ("Token F1", "chrF"), strict=True):
        axis.set(xscale="log", xlabel="text length bucket (tokens, upper bound)", ylabel=title, ylim=(0, 100))
        axis.set_xticks(BUCKETS, [f"≤{bound}" for bound in BUCKETS])
        axis.set_title(f"{title} vs length (σ = {noise_levels[0]:g})")
        axis.grid(alpha=0.3)
    if "noise" in panel_of:
        panel_of["noise"].set(
            xlabel="noise σ (relative to embedding RMS)", ylabel="Token F1 (all texts)", ylim=(0, 100)
        )
        panel_of["noise"].set_title("Token F1 vs embedding noise")
        panel_of["noise"].grid(alpha=0.3)
    if "cost" in panel_of:
        axis = panel_of["cost"]
        for name, short in sorted(timed.items(), key=lambda item: item[1]["decode_seconds"]):
            axis.scatter(short["decode_seconds"], 100 * short["token_f1"], color=colours[name])
            axis.annotate(
                name,
                (short["decode_seconds"], 100 * short["token_f1"]),
                fontsize=7,
                xytext=(3, 3),
                textcoords="offset points",
            )
        axis.set(
            xscale="log",
            xlabel=f"decode time of the ≤{SHORT_TEXT_TOKENS}-token texts (s)",
            ylabel=f"Token F1 (≤{SHORT_TEXT_TOKENS} tokens)",
        )
        axis.xaxis.set_minor_formatter(NullFormatter())
        axis.set_title("Fidelity vs decode time")
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=120)


def format_table(systems: dict[str, dict[str, Any]]) -> str:
    """A Markdown table of fidelity per system, noise level and bucket (percentages; BLEU and chrF 0-100)."""
    lines = [
        "| system | σ | bucket | n | tokens/vector | exact match | token F1 | BLEU | chrF |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, by_sigma in systems.items():
        for sigma, result in by_sigma.items():
            rows = [
                *((f"≤{bound}", metrics) for bound, metrics in result["buckets"].items()),
                *([(f"≤{SHORT_TEXT_TOKENS} together", result["short"])] if "short" in result else []),
                ("all", result["overall"]),
            ]
            for bucket, metrics in rows:
                lines.append(
                    f"| {name} | {float(sigma):g} | {bucket} | {metrics['n']} | {metrics['tokens_per_vector']:.1f} | "
                    f"{100 * metrics['exact_match']:.1f} | {100 * metrics['token_f1']:.1f} | {metrics['bleu']:.1f} | "
                    f"{metrics['chrf']:.1f} |"
                )
    return "\n".join(lines)


def reusable_systems(
    path: Path, config: dict[str, Any], exclude: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The results and encoder settings of an earlier run's systems that this run did not compute, after checking
    the earlier run decoded the same texts under the same settings."""
    try:
        earlier = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise SystemExit(f"--reuse {path}: cannot read it as a decode_accuracy.json ({exc}).") from exc
    earlier_config = earlier.get("config", {})
    for key in ("texts_per_bucket", "buckets", "noise", "max_new_tokens", "seed"):
        if earlier_config.get(key) != config[key]:
            raise SystemExit(
                f"--reuse {path}: its {key} is {earlier_config.get(key)!r}, this run's is {config[key]!r}; "
                "only results on the same texts and settings can sit in one table. Run those systems again instead."
            )
    reused = {name: result for name, result in earlier["systems"].items() if name not in exclude}
    encoders = earlier_config.get("encoders", {})
    return reused, {name: encoders[name] for name in reused if name in encoders}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--models", nargs="+", default=DEFAULT_MODELS, help=f"{GLAE}, {GLAE_UNTRAINED} or saved GLAE folders."
    )
    parser.add_argument("--limit", type=int, help=f"Texts per length bucket (default {DEFAULT_TEXTS_PER_BUCKET}).")
    parser.add_argument("--max-new-tokens", type=int, help="Token budget of every decode (default: bucket bound + 16).")
    parser.add_argument(
        "--max-seq-length", type=int, help="Text tokens each encoder reads (default: as saved with the model)."
    )
    parser.add_argument("--noise", type=float, nargs="+", default=[0.0], help="Noise levels σ (default: 0).")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--num-beams", type=int, help="Beam width of every GLAE decode (default 1: greedy).")
    parser.add_argument(
        "--candidates", type=int, help="Round-trip reranking of this many beams per text (default 1: off)."
    )
    parser.add_argument("--refinement-steps", type=int, help="Correction rounds of the round trip (default 0: none).")
    parser.add_argument(
        "--model-decoding",
        action="store_true",
        help="Decode each model as glae_st.decode does by default: with its own saved decoding setting, for every "
        "setting the three options above leave open (the bundled default: 16 beams and one refinement round).",
    )
    parser.add_argument(
        "--buckets",
        type=int,
        nargs="+",
        choices=BUCKETS,
        default=list(BUCKETS),
        help="Length buckets to decode (default: all); 8 16 32 are the short texts.",
    )
    parser.add_argument(
        "--split",
        choices=["dev", "test", "all"],
        default="test",
        help="Lee articles to draw from: dev (choose models on it), test (report; the default), or all.",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--reuse",
        type=Path,
        help="An earlier decode_accuracy.json: keep its systems that --models does not name (its texts and settings "
        "must be this run's).",
    )
    parser.add_argument(
        "--output-dir",
        type=Path,
        help="Default: benchmarks/results/decode (benchmarks/results/limit-N/decode with --limit).",
    )
    parser.add_argument(
        "--replot",
        type=Path,
        metavar="JSON",
        help="Decode nothing: redraw the plot of a saved decode_accuracy.json next to it and print its table.",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the command line; return what is also written to ``<output-dir>/decode_accuracy.json``."""
    args = parse_args(argv)
    if args.replot is not None:
        try:
            saved = json.loads(args.replot.read_text(encoding="utf-8"))
            systems = saved["systems"]
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
            raise SystemExit(f"--replot {args.replot}: cannot read it as a decode_accuracy.json ({exc}).") from exc
        plot(systems, args.replot.with_suffix(".png"))
        print(format_table(systems))
        return saved
    for flag, value, lowest in (
        ("--num-beams", args.num_beams, 1),
        ("--candidates", args.candidates, 1),
        ("--refinement-steps", args.refinement_steps, 0),
    ):
        if value is not None and value < lowest:
            raise SystemExit(f"{flag} must be at least {lowest}, got {value}.")
    output_dir = args.output_dir or results_dir(args.limit) / "decode"
    tokenizer = AutoTokenizer.from_pretrained(smollm2_folder())
    per_bucket = args.limit or DEFAULT_TEXTS_PER_BUCKET
    texts = [
        text
        for text in held_out_texts(tokenizer, per_bucket, seed=args.seed, split=args.split)
        if text.bucket in args.buckets
    ]
    if len({display_name(name) for name in args.models}) < len(args.models):
        raise SystemExit(f"--models: two models would share a label in {args.models}; rename a folder.")
    models = {name: load_glae(name) for name in args.models}
    settings = {name: decoding_setting(model, args) for name, model in models.items()}
    labels = {name: display_name(name) + setting_label(settings[name]) for name in models}
    systems, encoders = {}, {}
    for name, model in models.items():
        if args.max_seq_length is not None:
            model.max_seq_length = args.max_seq_length
        autoencoder = glae_autoencoder(model, labels[name], args.batch_size, **settings[name])
        encoders[autoencoder.name] = {
            "max_seq_length": model[0].max_seq_length,
            "long_text": model[0].long_text,
            **settings[name],
            "compute_dtype": str(model[0].compute_dtype()).removeprefix("torch."),
        }
        systems[autoencoder.name] = evaluate(autoencoder, texts, args.noise, args.max_new_tokens, args.seed)
    config = {
        "models": args.models,
        "encoders": encoders,
        "texts_per_bucket": per_bucket,
        "buckets": {str(bucket): sum(text.bucket == bucket for text in texts) for bucket in BUCKETS},
        "noise": args.noise,
        "max_new_tokens": args.max_new_tokens,
        "seed": args.seed,
        "split": args.split,
    }
    if args.reuse is not None:
        reused, reused_encoders = reusable_systems(args.reuse, config, exclude=systems)
        systems.update(reused)
        encoders.update(reused_encoders)
        config["reused"] = {"from": str(args.reuse), "systems": list(reused)}
    summary = {"command": command_line(__file__, argv), "config": config, "systems": systems, "machine": machine_info()}
    write_json(output_dir / "decode_accuracy.json", summary)
    plot(systems, output_dir / "decode_accuracy.png")
    print(format_table(systems))
    return summary


if __name__ == "__main__":
    main()
