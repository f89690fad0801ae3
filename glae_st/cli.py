"""The ``glae`` command: encode texts to vectors and decode vectors to texts.

glae encode "A cat sits on the mat." "Stocks fell." -o vectors.npy
glae encode --file texts.txt -o vectors.jsonl          # one text per line; '-' reads stdin
glae decode vectors.npy                                 # prints one text per line
glae decode --mix a.npy b.npy --alpha 0.5               # decode (1 - alpha) * a + alpha * b
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from glae_st.registry import DEFAULT_MODEL


def read_texts(texts: Sequence[str], file: str | None) -> list[str]:
    """Texts from the arguments, or one per non-empty line of ``file`` (``-`` is stdin)."""
    if texts and file:
        raise SystemExit("glae encode: give texts as arguments or --file, not both.")
    if file:
        lines = sys.stdin.readlines() if file == "-" else Path(file).read_text(encoding="utf-8").splitlines()
        texts = [line.rstrip("\n") for line in lines if line.strip()]
    if not texts:
        raise SystemExit("glae encode: no texts given; pass them as arguments, or --file PATH (or - for stdin).")
    return list(texts)


def write_vectors(vectors: np.ndarray, texts: Sequence[str], output: str | None) -> None:
    """Write ``.npy`` (the array) or ``.jsonl`` (``{"text", "embedding"}`` per line); without ``output``, JSONL to stdout."""
    if output and output.endswith(".npy"):
        np.save(output, vectors)
        return
    lines = (json.dumps({"text": text, "embedding": vector.tolist()}) for text, vector in zip(texts, vectors))
    if output:
        Path(output).write_text("\n".join(lines) + "\n", encoding="utf-8")
    else:
        sys.stdout.writelines(line + "\n" for line in lines)


def read_vectors(path: str) -> np.ndarray:
    """Vectors from ``.npy`` or ``.jsonl`` (as written by ``glae encode``)."""
    if not Path(path).is_file():
        raise SystemExit(f"glae decode: {path} does not exist.")
    if path.endswith(".npy"):
        return np.load(path)
    rows = [
        json.loads(line)["embedding"] for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()
    ]
    return np.asarray(rows, dtype=np.float32)


def mix_vectors(first_path: str, second_path: str, alpha: float) -> np.ndarray:
    """``(1 - alpha) * A + alpha * B`` row by row: embedding arithmetic between two vector files."""
    first, second = read_vectors(first_path), read_vectors(second_path)
    if first.shape != second.shape:
        raise ValueError(f"--mix needs two files of the same shape, got {first.shape} and {second.shape}.")
    return (1 - alpha) * first + alpha * second


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="glae", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default=DEFAULT_MODEL, help="Model name, folder or Hub id (default: bundled).")
    parser.add_argument("--batch-size", type=int, default=32)
    commands = parser.add_subparsers(dest="command", required=True)
    encode = commands.add_parser("encode", help="Texts to embeddings.")
    encode.add_argument("texts", nargs="*", help="Texts to embed.")
    encode.add_argument("--file", help="Read one text per line from this file ('-' for stdin).")
    encode.add_argument("-o", "--output", help="Write .npy or .jsonl here (default: JSONL on stdout).")
    decode = commands.add_parser("decode", help="Embeddings to texts.")
    decode.add_argument("vectors", nargs="?", help=".npy or .jsonl file of embeddings.")
    decode.add_argument("--mix", nargs=2, metavar=("A", "B"), help="Decode a mix of two vector files, row by row.")
    decode.add_argument("--alpha", type=float, default=0.5, help="Weight of B in --mix (0 gives A, 1 gives B).")
    decode.add_argument("--max-new-tokens", type=int, default=64)
    decode.add_argument("--num-beams", type=int, default=1)
    args = parser.parse_args(argv)

    if args.command == "decode" and bool(args.vectors) == bool(args.mix):
        parser.error("glae decode takes one vector file, or --mix A B.")

    from glae_st.decoding import decode as decode_vectors
    from glae_st.registry import load_model

    model = load_model(args.model)
    try:
        if args.command == "encode":
            texts = read_texts(args.texts, args.file)
            vectors = model.encode(texts, batch_size=args.batch_size, show_progress_bar=len(texts) > args.batch_size)
            write_vectors(vectors, texts, args.output)
            return
        vectors = mix_vectors(*args.mix, args.alpha) if args.mix else read_vectors(args.vectors)
        texts = decode_vectors(
            model, vectors, max_new_tokens=args.max_new_tokens, num_beams=args.num_beams, batch_size=args.batch_size
        )
    except (TypeError, ValueError) as exc:
        raise SystemExit(f"glae {args.command}: {exc}") from exc
    sys.stdout.writelines(text + "\n" for text in texts)


if __name__ == "__main__":
    main()
