"""Train a GLAE model with sentence-transformers' trainer, peft LoRA and GLAELoss.

    python -m training.train --config training/configs/smollm2-default.yaml --output-dir runs/smollm2
    python -m training.train --config training/configs/smollm2-default.yaml --output-dir runs/smollm2 --resume
    accelerate launch -m training.train --config training/configs/glae-7b.yaml --output-dir runs/glae-7b   # multi-GPU
    python -m training.train --config training/configs/glae-7b.yaml --output-dir /tmp/dry --dry-run  # CPU, seconds

Every run is seeded; checkpoints (adapter, bridge, special-token rows, optimizer) land in ``output-dir`` every
``save_steps``; ``--resume`` continues from the newest one. The log history (JSON) and curves (PNG) are written
next to the final model in ``output-dir/final``.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Any

import torch
import yaml
from datasets import DatasetDict
from peft import LoraConfig
from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer, SentenceTransformerTrainingArguments
from sentence_transformers.base.sampler import MultiDatasetBatchSamplers
from sentence_transformers.sentence_transformer.losses import CoSENTLoss
from torch import nn
from transformers import set_seed
from transformers.trainer_utils import get_last_checkpoint

from glae_st import CompressTokenEmbedding, GLAEEmbedding, corpora, load_model
from glae_st.adapters import RECURRENCE_ADAPTER
from glae_st.atomic import atomic_folder, files_into, write_text
from glae_st.losses import BoundedContextLoss, ConditionalAlignmentLoss, GLAELoss, with_teacher_embeddings
from glae_st.model_card import write_model_card
from glae_st.registry import hub_offline_reason
from glae_st.saved_model import TRAINING_CONFIG_FILE, TRAINING_LOG_FILE, read_training_record, trained_steps
from training import data
from training.batching import BATCH_SAMPLERS
from training.dry_run import cap_rows, dry_run_config
from training.evaluators import EVALUATORS, build_evaluator, selected_evaluators
from training.plots import plot_training_curves


def load_config(path: str, overrides: list[str]) -> dict[str, Any]:
    """Read a YAML config and apply ``section.key=value`` overrides (values parsed as YAML)."""
    config = yaml.safe_load(Path(path).read_text())
    for override in overrides:
        key, _, value = override.partition("=")
        if not value:
            raise ValueError(f"--set takes section.key=value, got {override!r}.")
        *sections, leaf = key.split(".")
        node = config
        for section in sections:
            node = node.setdefault(section, {})
        node[leaf] = yaml.safe_load(value)
    return config


EMBEDDING_MODULES = {"glae": GLAEEmbedding, "compress_tokens": CompressTokenEmbedding}
"""``embedding.module`` of a config: GLAE's <embedding> token, or AutoRegEmbed's compress tokens."""
LOSSES = {"glae": GLAELoss, "conditional_alignment": ConditionalAlignmentLoss}
"""``loss.type`` of a config: GLAELoss (L1 + L2), or AutoRegEmbed's ConditionalAlignmentLoss (the benchmarks'
baseline)."""
CONTINUATIONS = "continuations"
"""The dataset of ``data.continuations`` (Fig. 2 rows)."""
STSB_SCORED = "stsb_scored"
"""The dataset of ``data.stsb_scored``: every STS-B train pair with its graded score."""
DATASET_LOSSES = {CONTINUATIONS: BoundedContextLoss, STSB_SCORED: CoSENTLoss}
"""Datasets trained with a loss of their own, built from the model; every other dataset trains with the config's
loss. Their rows carry their own labels (or none), so the teacher does not label them."""


SAVED_LONG_TEXT = "saved_long_text"
"""``embedding.saved_long_text`` of a config: the ``long_text`` the final model is saved with, when it should read
texts otherwise than training did (a recurrence stage trains ``iterative`` and ships ``lead_mean``)."""


def earlier_stages(init_from: str) -> list[str]:
    """The training history of the model a run continues (for its card): that model's own earlier stages, then one
    line for the run that made it, read from its ``training_config.json`` and ``training_log.json``."""
    earlier, log = read_training_record(init_from)
    if earlier is None:
        return [f"`{init_from}`, a saved model without a training config"]
    steps = trained_steps(log or []) or earlier["training"]["max_steps"]
    start = f"`{earlier['init_from']}`" if earlier.get("init_from") else f"the backbone `{earlier['backbone']}`"
    stage = (
        f"{steps} steps from {start}, learning rate {earlier['training']['learning_rate']}, "
        f"loss {json.dumps(earlier.get('loss', {}))}, data {json.dumps(earlier.get('data', {}))}, "
        f"seed {earlier['training']['seed']}"
    )
    return [*earlier.get("earlier_stages", []), stage]


def earlier_data(init_from: str) -> list[dict[str, Any]]:
    """The ``data`` settings of every stage before this run (what ``glae_st.mteb_meta`` reads to name the training
    data of the whole history), from the ``training_config.json`` of the model the run continues."""
    earlier, _ = read_training_record(init_from)
    return [] if earlier is None else [*earlier.get("earlier_data", []), earlier.get("data", {})]


def build_model(config: dict[str, Any]) -> SentenceTransformer:
    """The model to train; with ``recurrence_adapter: {r: R}`` only the adapter of the long-text prompts trains, over a
    frozen encoder and bridge: a new one (:meth:`GLAEEmbedding.add_recurrence_adapter`), or the one the ``init_from``
    model already has, trained on."""
    model = build_embedding_model(config)
    if config.get("recurrence_adapter") and not model[0].has_recurrence_adapter:
        model[0].add_recurrence_adapter(config["recurrence_adapter"].get("r"))
    return model


def build_embedding_model(config: dict[str, Any]) -> SentenceTransformer:
    if config.get("init_from"):  # continue from a saved GLAE model: its adapter, bridge and token rows train on
        model = load_model(config["init_from"])
        module = model[0]
        # a recurrence stage over a model that has the adapter trains that adapter alone, over the frozen encoder
        only = f".{RECURRENCE_ADAPTER}" if config.get("recurrence_adapter") and module.has_recurrence_adapter else ""
        for name, parameter in module.causal_lm.named_parameters():
            parameter.requires_grad_(("lora_" in name or "trainable_tokens_delta" in name) and only in name)
        module.bridge.requires_grad_(not only)
        module.max_seq_length = config["max_seq_length"]
        embedding = config.get("embedding") or {}
        module.long_text = embedding.get("long_text", module.long_text)
        module.extra_adapter_dtype = embedding.get("extra_adapter_dtype", module.extra_adapter_dtype)
        module.trained_recurrence = module.trained_recurrence or module.long_text == "iterative"  # it is now
        return model
    embedding = dict(config.get("embedding") or {"module": "glae"})
    embedding.pop(SAVED_LONG_TEXT, None)
    module_class = EMBEDDING_MODULES[embedding.pop("module")]
    if embedding.get("long_text") == "iterative":
        embedding["trained_recurrence"] = True
    module = module_class(config["backbone"], max_seq_length=config["max_seq_length"], **embedding)
    lora = config["lora"]
    module.add_lora(
        LoraConfig(
            r=lora["r"], lora_alpha=lora["alpha"], lora_dropout=lora["dropout"], target_modules=lora["target_modules"]
        )
    )
    if config["training"].get("gradient_checkpointing"):
        module.causal_lm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    module.bridge.requires_grad_(True)
    return SentenceTransformer(modules=[module])


def build_datasets(config: dict[str, Any], module: GLAEEmbedding) -> DatasetDict:
    settings = config["data"]
    datasets = {}
    if settings.get("stsb_min_score") is not None:
        datasets["stsb_pairs"] = data.stsb_positive_pairs(settings["stsb_min_score"])
    if settings.get("stsb_scored"):  # graded similarity for CoSENTLoss
        datasets[STSB_SCORED] = data.stsb_scored_pairs()
    if settings.get("wikipedia_limit", 0) != 0:
        datasets["wikipedia"] = data.wikipedia_texts(settings.get("wikipedia_limit"), seed=config["training"]["seed"])
    if settings.get("brown_limit", 0) != 0:
        datasets["brown"] = data.brown_texts(settings.get("brown_limit"), seed=config["training"]["seed"])
    if settings.get("mix"):  # a mixed single-text dataset from many corpora
        datasets["mixed"] = data.mixed_texts(
            settings["mix"], max_words=settings.get("max_words", 32), seed=config["training"]["seed"]
        )
    if settings.get("bible_pairs_limit", 0) != 0:  # paraphrase positives: one verse in two translations
        datasets["bible_pairs"] = data.bible_paraphrase_pairs(
            settings.get("bible_pairs_limit"), seed=config["training"]["seed"]
        )
    if settings.get("hub"):  # Hub datasets where the Hub is reachable; the packaged corpora above are the fallback
        if hub_offline_reason() is None:
            for name, source in settings["hub"].items():
                datasets[name] = data.hub_pairs(**source)
        else:
            print(f"The Hugging Face Hub is unreachable: training without {sorted(settings['hub'])}.", flush=True)
    if settings.get("passages_limit", 0) != 0:  # long texts: the Fig. 3 recurrence with long_text="iterative"
        datasets["passages"] = data.wikipedia_passage_texts(
            settings.get("passages_limit"), seed=config["training"]["seed"]
        )
    if settings.get("long_documents"):  # (deep passage, document) pairs read with the Fig. 3 recurrence
        datasets["long_documents"] = data.long_document_pairs(
            module.tokenizer, module.max_seq_length, seed=config["training"]["seed"], **settings["long_documents"]
        )
    if settings.get("continuations"):  # Fig. 2 rows for BoundedContextLoss
        datasets[CONTINUATIONS] = data.continuation_pairs(
            module.tokenizer, module.max_seq_length, seed=config["training"]["seed"], **settings["continuations"]
        )
    if not datasets:
        raise ValueError(
            "The config selects no training data (data.stsb_min_score, data.stsb_scored, data.wikipedia_limit, "
            "data.brown_limit, data.mix, data.bible_pairs_limit, data.passages_limit, data.long_documents, "
            "data.continuations)."
        )
    return DatasetDict(datasets)


def add_teacher_labels(config: dict[str, Any], datasets: DatasetDict, cache_dir: Path) -> DatasetDict:
    """Label every row with ``config["teacher"]``'s embeddings of its texts (GLAELoss's distillation term), once per
    output folder: the labelled datasets are saved in ``cache_dir`` and read back on ``--resume``."""
    if not config.get("teacher"):
        return datasets
    if (cache_dir / "dataset_dict.json").is_file():
        return DatasetDict.load_from_disk(str(cache_dir))
    teacher_name = config["teacher"]
    # a GLAE teacher (a recurrence stage's own chunk mean) loads through load_model, which runs no folder code
    teacher = (
        SentenceTransformer(str(corpora.minilm_folder()))
        if teacher_name == "all-MiniLM-L6-v2"
        else load_model(teacher_name)
    )
    labelled = DatasetDict(
        {
            name: rows if name in DATASET_LOSSES else with_teacher_embeddings(rows, teacher)
            for name, rows in datasets.items()
        }
    )
    with atomic_folder(cache_dir, force=True) as temporary:  # renamed in once whole, as --resume trusts it
        labelled.save_to_disk(str(temporary))
    return labelled


def build_loss(
    config: dict[str, Any], model: SentenceTransformer, datasets: DatasetDict
) -> nn.Module | dict[str, nn.Module]:
    """The config's loss, or, when a dataset of :data:`DATASET_LOSSES` is present, one loss per dataset (as
    sentence-transformers' trainer takes them): that dataset's own, the config's for every other one."""
    settings = dict(config["loss"])
    loss = LOSSES[settings.pop("type", "glae")](model, **settings)
    if not DATASET_LOSSES.keys() & datasets.keys():
        return loss
    return {name: DATASET_LOSSES[name](model) if name in DATASET_LOSSES else loss for name in datasets}


def resume_checkpoint(output_dir: Path, max_steps: int) -> str:
    """The newest checkpoint of ``output_dir`` for ``--resume``, checked before any model or data is built: a
    ValueError when there is none, or when it already reached ``max_steps`` and ``final/`` holds its model (resuming
    would train one more step and overwrite that model)."""
    checkpoint = get_last_checkpoint(str(output_dir)) if output_dir.is_dir() else None
    if checkpoint is None:
        raise ValueError(f"--resume: no checkpoint-* folder in {output_dir}; start without --resume.")
    state_file = Path(checkpoint) / "trainer_state.json"
    state = json.loads(state_file.read_text()) if state_file.is_file() else {"global_step": 0}
    if state["global_step"] >= max_steps and (output_dir / "final").is_dir():
        raise ValueError(
            f"--resume: {checkpoint} already reached training.max_steps ({max_steps}) and {output_dir / 'final'} holds "
            f"its model; to train on, raise it: --set training.max_steps=N with N > {state['global_step']}."
        )
    return checkpoint


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="YAML config, e.g. training/configs/smollm2-default.yaml")
    parser.add_argument("--output-dir", required=True, help="Checkpoints, logs and the final model go here.")
    parser.add_argument("--resume", action="store_true", help="Continue from the newest checkpoint in --output-dir.")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="Override a config value.")
    parser.add_argument("--export-to", help="Also copy the final model to this folder (e.g. the bundled default).")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="Run the config's whole code path in seconds on a tiny random Llama and a few rows (training/dry_run.py).",
    )
    args = parser.parse_args(argv)
    if args.dry_run and args.export_to:
        parser.error("--dry-run trains a tiny random model; it cannot be exported (drop --export-to).")

    config = load_config(args.config, args.set)
    sampler = config["training"].get("batch_sampler", "no_duplicates")
    if sampler not in BATCH_SAMPLERS:
        parser.error(f"training.batch_sampler must be one of {sorted(BATCH_SAMPLERS)}, got {sampler!r}")
    if not selected_evaluators(config.get("eval") or {}):
        parser.error(f"the config's eval selects no evaluator: give at least one of {', '.join(EVALUATORS)}")
    if args.dry_run:
        config = dry_run_config(config, args.output_dir)
    try:
        checkpoint = resume_checkpoint(Path(args.output_dir), config["training"]["max_steps"]) if args.resume else None
    except ValueError as error:
        parser.error(str(error))
    training = config["training"]
    set_seed(training["seed"])
    model = build_model(config)
    train_dataset = build_datasets(config, model[0])
    if args.dry_run:
        train_dataset = cap_rows(train_dataset)
    train_dataset = add_teacher_labels(config, train_dataset, Path(args.output_dir) / "teacher-labelled-data")
    loss = build_loss(config, model, train_dataset)
    output_dir = Path(args.output_dir)
    training_args = SentenceTransformerTrainingArguments(
        output_dir=str(output_dir),
        max_steps=training["max_steps"],
        per_device_train_batch_size=training["batch_size"],
        learning_rate=training["learning_rate"],
        warmup_steps=training["warmup_steps"],
        weight_decay=training["weight_decay"],
        lr_scheduler_type="cosine",
        logging_steps=training["logging_steps"],
        eval_strategy="steps",
        eval_steps=training["eval_steps"],
        eval_on_start=training.get("eval_on_start", False),  # the starting model's row of the curve (step 0)
        save_strategy="steps",
        save_steps=training["save_steps"],
        save_total_limit=2,
        seed=training["seed"],
        data_seed=training["seed"],
        bf16=training["bf16"],
        # without CUDA, bf16 is CPU autocast (AMX/AVX512-BF16), which transformers enables only with use_cpu
        use_cpu=training.get("use_cpu", not torch.cuda.is_available()),
        # The reconstruction term runs the bridge and decoder outside the DDP-wrapped forward: DDP's search for
        # unused parameters would then mark the bridge ready twice and fail on the first multi-GPU step.
        ddp_find_unused_parameters=False,
        dataloader_drop_last=True,
        batch_sampler=BATCH_SAMPLERS[sampler],
        multi_dataset_batch_sampler=MultiDatasetBatchSamplers(config["data"]["sampler"]),
        report_to="none",
    )
    trainer = SentenceTransformerTrainer(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        loss=loss,
        evaluator=build_evaluator(config, model[0]),
    )
    trainer.train(resume_from_checkpoint=checkpoint)

    final_dir = output_dir / "final"
    model[0].long_text = (config.get("embedding") or {}).get(SAVED_LONG_TEXT, model[0].long_text)
    if model[0].embedding_norm is None or not config.get("recurrence_adapter"):  # short texts kept their vectors
        model[0].embedding_norm = data.median_embedding_norm(model, data.held_out_decode_texts(256))
    with files_into(final_dir) as temporary:  # every file written beside the folder, then renamed in
        model.save(str(temporary))
    write_text(final_dir / TRAINING_LOG_FILE, json.dumps(trainer.state.log_history, indent=1))
    if config.get("init_from"):
        config = {
            **config,
            "earlier_stages": earlier_stages(config["init_from"]),
            "earlier_data": earlier_data(config["init_from"]),
        }
    write_text(final_dir / TRAINING_CONFIG_FILE, json.dumps(config, indent=1))
    plot_training_curves(trainer.state.log_history, final_dir / "training_curves.png")

    results_md = Path(__file__).resolve().parent.parent / "benchmarks" / "RESULTS.md"
    card_kwargs = {"results_md": results_md if results_md.is_file() else None}
    # the curated Hub card replaces sentence-transformers' own
    write_model_card(model, final_dir, model_name=output_dir.name, **card_kwargs)
    if args.export_to:
        with files_into(args.export_to) as temporary:  # a copy beside it, each file then renamed in
            shutil.copytree(final_dir, temporary, dirs_exist_ok=True)
        write_model_card(model, args.export_to, model_name=Path(args.export_to).name, **card_kwargs)


if __name__ == "__main__":
    main()
