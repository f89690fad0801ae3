"""Hub model cards for GLAE models, written with sentence-transformers' own model card machinery.

:class:`GLAEModelCardData` is a :class:`~sentence_transformers.SentenceTransformerModelCardData` with a GLAE
template: it states the backbone, the trained weights and their revision, the training data and losses (from the
``training_config.json`` and ``training_log.json`` that ``training/train.py`` writes next to a model), the benchmark
tables of a ``benchmarks/run_all.py`` report, how to encode and decode, and the limitations, first of all that
embeddings can be decoded back into text.

Example::

    from glae_st.model_card import write_model_card

    write_model_card("runs/smollm2-default/final", results_md="benchmarks/RESULTS.md")   # rewrites its README.md

The same from the command line (``benchmarks/RESULTS.md`` is used when it exists)::

    python -m glae_st.model_card glae_st/models/glae-smollm2-135m
"""

from __future__ import annotations

import argparse
import inspect
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from sentence_transformers import SentenceTransformer, SentenceTransformerModelCardData
from sentence_transformers.base.model_card import generate_model_card

from glae_st import __version__, prompts
from glae_st.atomic import write_text
from glae_st.backbone import SMOLLM2_BACKBONE, SMOLLM2_LICENSE, SMOLLM2_REFERENCE
from glae_st.card_text import describe_adapter, describe_backbone, describe_decoding, describe_training
from glae_st.decoding import decode, glae_module
from glae_st.module import GLAEEmbedding
from glae_st.registry import DEFAULT_MODEL, load_model
from glae_st.saved_model import read_training_record, saved_weights_revision

DEFAULT_RESULTS_MD = Path("benchmarks") / "RESULTS.md"
"""The benchmark report of a glae-st checkout (``python -m benchmarks.run_all``), relative to the repository root."""

BENCHMARK_SECTIONS = ("MTEB", "Decoding accuracy")
"""Sections of the benchmark report whose tables the card copies (the throughput ones depend on the machine)."""

USAGE_EXAMPLES = ["A cat sits on the mat.", "A kitten is sitting on a rug.", "Stocks fell sharply on Monday."]
"""Texts that the card's usage snippet encodes, compares and decodes, with the outputs computed by the model."""

_NOT_CARRIED = frozenset(
    {
        "model",
        "model_name",
        "template_path",
        "usage_examples",
        "usage_examples_display",
        "similarities",
        "decoded_examples",
        "save_dir",
        "first_save",
        "_asset_cache",
        "_cached_dict",
    }
)
"""Card data fields that describe one rendering (or the card's class), not the model; all others carry over."""


@dataclass(frozen=True)
class BenchmarkSection:
    """One section of a benchmark report: its title, its text and table as written, and its revision column."""

    title: str
    body: str
    revisions: tuple[str, ...]


@dataclass
class GLAEModelCardData(SentenceTransformerModelCardData):
    """Model card data of a GLAE model: sentence-transformers' card data, rendered with the GLAE template.

    On top of :class:`~sentence_transformers.SentenceTransformerModelCardData`, the card states the backbone, the
    trained weights, benchmark tables, encode and decode usage (with outputs computed by the model) and the
    limitations. What it says about the saved files comes from the folder the card is written to, next to them: the
    :func:`weights_revision` and the training record (:func:`read_training_record`). The language defaults to English,
    the data every GLAE recipe trains on; a SmolLM2 backbone also sets the base model and the licence.

    Args:
        benchmark_report: A report of ``benchmarks/run_all.py`` (``benchmarks/RESULTS.md``); the card copies its
            MTEB and decoding-accuracy tables and says whether they measured this model's weights revision.

    The other arguments are those of :class:`~sentence_transformers.SentenceTransformerModelCardData`.

    Example::

        from sentence_transformers import SentenceTransformer
        import glae_st
        from glae_st.model_card import GLAEModelCardData

        model = SentenceTransformer(
            modules=[glae_st.GLAEEmbedding()], model_card_data=GLAEModelCardData(model_id="me/glae-smollm2")
        )
        # ... train; model.save(path) and model.push_to_hub(...) now write the GLAE card
    """

    benchmark_report: str | None = None

    decoded_examples: list[str] | None = field(default=None, init=False, repr=False)
    template_path: Path = field(default=Path(__file__).parent / "model_card_template.md", init=False, repr=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.language = self.language or ["en"]
        self.add_tags("glae")

    @classmethod
    def from_card_data(cls, card_data: SentenceTransformerModelCardData, **kwargs: Any) -> GLAEModelCardData:
        """GLAE card data that keeps what sentence-transformers (and its trainer) recorded in ``card_data``.

        The trainer fills ``model.model_card_data`` with the losses, evaluation results, hyperparameters and widget
        examples; this carries them over, so the GLAE card has them too. ``kwargs`` set further fields.
        """
        carried = {f.name: getattr(card_data, f.name) for f in fields(card_data) if f.name not in _NOT_CARRIED}
        init_names = {f.name for f in fields(cls) if f.init}
        card = cls(**{**{name: value for name, value in carried.items() if name in init_names}, **kwargs})
        for name, value in carried.items():
            if name not in init_names:
                setattr(card, name, value)
        return card

    def register_model(self, model: SentenceTransformer) -> None:
        super().register_model(model)
        backbone = glae_module(model).backbone
        if backbone == SMOLLM2_BACKBONE:
            self.base_model = self.base_model or SMOLLM2_REFERENCE
            self.license = self.license or SMOLLM2_LICENSE
        elif not Path(backbone).is_dir():  # a Hub id
            self.base_model = self.base_model or backbone

    def run_usage_snippet(self) -> None:
        if self.usage_examples is None:
            self.usage_examples = list(USAGE_EXAMPLES)
        super().run_usage_snippet()
        if self.generate_widget_examples:
            embeddings = self.model.encode(self.usage_examples, convert_to_tensor=True, show_progress_bar=False)
            self.decoded_examples = decode(self.model, embeddings, show_progress_bar=False)

    def generate_usage_snippet(self) -> str:
        reference = self.model_reference()
        lines = [
            "import glae_st",
            "",
            f"model = glae_st.load_model({reference})",
            f"# or: SentenceTransformer({reference}, trust_remote_code=True)",
            "sentences = [",
            *(f"    {self._format_snippet_value(text)}," for text in self.usage_examples),
            "]",
            "embeddings = model.encode(sentences)",
            "print(embeddings.shape)",
            f"# [{len(self.usage_examples)}, {self._get_snippet_output_dimensionality()}]",
            "",
            "# Get the similarity scores for the embeddings",
            "similarities = model.similarity(embeddings, embeddings)",
            "print(similarities)",
            *([self.similarities] if self.similarities else []),
            "",
            "# Decode the embeddings back into text",
            "for text in glae_st.decode(model, embeddings):",
            "    print(text)",
            *(f"# {text}" for text in self.decoded_examples or []),
        ]
        return "```python\n" + "\n".join(lines) + "\n```"

    def model_reference(self) -> str:
        """How code names the model: its Hub id, ``glae_st.DEFAULT_MODEL``, or the folder the card is written to."""
        if self.model_id:
            return f'"{self.model_id}"'
        if self.save_dir and Path(self.save_dir).resolve() == Path(DEFAULT_MODEL).resolve():
            return "glae_st.DEFAULT_MODEL"
        return f'"{Path(self.save_dir or "path/to/model").as_posix()}"'

    def get_model_specific_metadata(self) -> dict[str, Any]:
        metadata = super().get_model_specific_metadata()
        module = glae_module(self.model)
        folder = Path(self.save_dir) if self.save_dir else None
        training_config, training_log = read_training_record(folder) if folder else (None, None)
        benchmarks = read_benchmark_report(self.benchmark_report) if self.benchmark_report else []
        metadata.update(
            {
                "glae_st_version": __version__,
                "module_class": f"{type(module).__module__}.{type(module).__qualname__}",
                "module_summary": " ".join(inspect.getdoc(type(module)).split("\n\n")[0].split()).rstrip("."),
                "embeds_at_embedding_token": type(module) is GLAEEmbedding,
                "encode_prompt": f"{prompts.ENCODE.prefix}{{text}}{prompts.ENCODE.suffix}",
                "decode_prompt": f"{prompts.DECODE.prefix}{{vector}}{prompts.DECODE.suffix}",
                "embedding_token": prompts.EMBEDDING_OPEN,
                "text_close": prompts.TEXT_CLOSE,
                "backbone": describe_backbone(module.backbone),
                "needs_smollm2_package": module.backbone == SMOLLM2_BACKBONE,
                "long_text": module.long_text,
                "adapter": describe_adapter(module),
                "decoding": describe_decoding(module.decoding),
                "special_tokens": ", ".join(f"`{token}`" for token in prompts.SPECIAL_TOKENS),
                "weights_revision": saved_weights_revision(folder),
                "training": describe_training(training_config, training_log),
                "benchmark_source": _display_path(self.benchmark_report) if self.benchmark_report else None,
                "benchmarks": benchmarks,
                "benchmarked_revisions": {revision for section in benchmarks for revision in section.revisions},
            }
        )
        return metadata


def read_benchmark_report(path: str | Path) -> list[BenchmarkSection]:
    """The :data:`BENCHMARK_SECTIONS` of a ``benchmarks/run_all.py`` report that have a table, as written there.

    Images are left out (their links are relative to the report). A section whose table has a ``revision`` column
    (MTEB: the hash of a GLAE model's weights) records the revisions of its rows.
    """
    sections = []
    for chunk in re.split(r"^## ", Path(path).read_text(encoding="utf-8"), flags=re.MULTILINE)[1:]:
        title, _, body = chunk.partition("\n")
        table = [line for line in body.splitlines() if line.startswith("|")]
        if title.strip() not in BENCHMARK_SECTIONS or not table:
            continue
        text = "\n".join(line for line in body.splitlines() if not line.startswith("!["))
        header = _cells(table[0])
        revisions = tuple(_cells(row)[header.index("revision")] for row in table[2:]) if "revision" in header else ()
        sections.append(BenchmarkSection(title.strip(), re.sub(r"\n{3,}", "\n\n", text).strip(), revisions))
    return sections


def write_model_card(
    model_or_path: SentenceTransformer | str | Path,
    output_dir: str | Path | None = None,
    *,
    results_md: str | Path | None = None,
    model_name: str | None = None,
    model_id: str | None = None,
) -> Path:
    """(Re)write the ``README.md`` model card of a saved GLAE model, in the folder it is saved in.

    The card is rendered by sentence-transformers (``generate_model_card``) from :class:`GLAEModelCardData`: it keeps
    what a trainer recorded in ``model.model_card_data`` and adds the weights revision and training record of the
    folder, the benchmark tables of ``results_md``, and usage outputs computed with the model (similarities and
    decoded texts). The card data then stays on the model, so later ``model.save`` calls write GLAE cards too.

    Args:
        model_or_path: The folder of a saved GLAE model, or a GLAE SentenceTransformer.
        output_dir: The folder the model is saved in, where ``README.md`` goes; by default ``model_or_path`` when
            that is a folder. Required with a model: save it there first (``model.save(output_dir)``).
        results_md: A benchmark report of ``benchmarks/run_all.py`` to copy the MTEB and decoding tables from.
        model_name: The card's title; by default the folder's name.
        model_id: The Hub id (``organisation/name``) the model is published under; the usage snippet loads it.

    Returns:
        The path of the written ``README.md``.

    Raises:
        ValueError: A model was given without ``output_dir``.
        FileNotFoundError: ``output_dir`` holds no saved GLAE model, or ``results_md`` does not exist.

    Example::

        model.save("runs/glae/final")
        write_model_card(model, "runs/glae/final", results_md="benchmarks/RESULTS.md", model_name="glae-smollm2")
        write_model_card("runs/glae/final", model_id="me/glae-smollm2")     # loads the model from the folder
    """
    is_model = isinstance(model_or_path, SentenceTransformer)
    if is_model and output_dir is None:
        raise ValueError("Pass output_dir, the folder the model is saved in: model.save(output_dir) first.")
    folder = Path(output_dir if output_dir is not None else model_or_path)
    if not (folder / GLAEEmbedding.config_file_name).is_file():
        raise FileNotFoundError(
            f"{str(folder)!r} has no {GLAEEmbedding.config_file_name}, so it holds no saved GLAE model. "
            "Save the model there first: model.save(folder)."
        )
    if results_md is not None and not Path(results_md).is_file():
        raise FileNotFoundError(
            f"The benchmark report {str(results_md)!r} does not exist; write it with `python -m benchmarks.run_all` "
            "or leave results_md out."
        )
    model = model_or_path if is_model else load_model(str(model_or_path))
    card_data = GLAEModelCardData.from_card_data(
        model.model_card_data,
        model_name=model_name or folder.resolve().name,
        model_id=model_id or model.model_card_data.model_id,
        benchmark_report=str(results_md) if results_md is not None else None,
    )
    model.model_card_data = card_data
    card_data.register_model(model)
    card_data.save_dir = str(folder)
    readme = folder / "README.md"
    write_text(readme, generate_model_card(model))  # beside it, then renamed in: a failure keeps the old card
    return readme


def _cells(row: str) -> list[str]:
    return [cell.strip() for cell in row.strip().strip("|").split("|")]


def _display_path(path: str | Path) -> str:
    """``path`` relative to the working directory when it lies inside it (as a command run there names it)."""
    resolved = Path(path).resolve()
    return resolved.relative_to(Path.cwd()).as_posix() if resolved.is_relative_to(Path.cwd()) else str(path)


def main(argv: Sequence[str] | None = None) -> Path:
    """The command line: (re)write ``MODEL_DIR/README.md``; return its path."""
    parser = argparse.ArgumentParser(
        prog="python -m glae_st.model_card", description="(Re)write the README.md model card of a saved GLAE model."
    )
    parser.add_argument("model_dir", help="The folder of a saved GLAE model, e.g. glae_st/models/glae-smollm2-135m.")
    parser.add_argument(
        "--results-md",
        help=f"Benchmark report to copy the MTEB and decoding tables from; by default {DEFAULT_RESULTS_MD} if it exists.",
    )
    parser.add_argument("--model-name", help="The card's title; by default the folder name.")
    parser.add_argument("--model-id", help="The Hub id (organisation/name) the model is published under.")
    args = parser.parse_args(argv)
    results_md = args.results_md or (DEFAULT_RESULTS_MD if DEFAULT_RESULTS_MD.is_file() else None)
    readme = write_model_card(args.model_dir, results_md=results_md, model_name=args.model_name, model_id=args.model_id)
    print(f"Wrote {readme}" + (f" (benchmarks from {results_md})" if results_md else " (no benchmark report)"))
    return readme


if __name__ == "__main__":
    main()
