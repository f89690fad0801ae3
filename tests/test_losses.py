"""GLAELoss on the tiny model: finite terms, gradients where they belong, the schedules, and trainer resume."""

from __future__ import annotations

import pytest
import torch
from datasets import Dataset
from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments

from glae_st.losses import GLAELoss

TEXTS = ["A cat sits on the mat.", "Stocks fell sharply on Monday.", "Rain is expected.", "She plays the violin."]
POSITIVES = ["A cat is on the mat.", "Shares dropped on Monday.", "It will rain.", "She is playing a violin."]


def features(model, texts):
    return model[0].preprocess(texts)


@pytest.mark.parametrize("repulsion", ["infonce", "tcr"])
def test_each_term_is_finite_and_trains_the_right_parameters(tiny_model, repulsion):
    module = tiny_model[0]
    module.add_lora()
    loss = GLAELoss(tiny_model, repulsion=repulsion)
    tiny_model.train()
    embeddings = [tiny_model(features(tiny_model, TEXTS))["sentence_embedding"]]
    repulsion_value = loss.repulsion_loss(embeddings)
    assert torch.isfinite(repulsion_value)
    repulsion_value.backward()
    # the encoder path (LoRA in layers before -1) learns from L1; the bridge is only on the decode path
    assert module.bridge.projection.weight.grad is None
    assert any(
        p.grad is not None and p.grad.abs().sum() > 0 for n, p in module.causal_lm.named_parameters() if "lora_B" in n
    )
    assert all(
        p.grad is None or p.grad.abs().sum() == 0 for n, p in module.causal_lm.named_parameters() if "layers.3." in n
    )

    tiny_model.zero_grad()
    batch = features(tiny_model, TEXTS)
    reconstruction = loss.reconstruction_loss(tiny_model(batch)["sentence_embedding"], batch)
    assert torch.isfinite(reconstruction) and reconstruction > 0
    reconstruction.backward()
    assert module.bridge.projection.weight.grad.abs().sum() > 0
    frozen = [p for n, p in module.causal_lm.named_parameters() if "lora" not in n and "trainable_tokens" not in n]
    assert all(not p.requires_grad for p in frozen)


def test_pairs_use_infonce_with_positives_and_single_text_batches_are_defined(tiny_model):
    loss = GLAELoss(tiny_model, reconstruction_weight=0.0)
    anchors, positives = features(tiny_model, TEXTS), features(tiny_model, POSITIVES)
    with torch.no_grad():
        value = loss([anchors, positives])
        a = tiny_model(features(tiny_model, TEXTS))["sentence_embedding"]
        p = tiny_model(features(tiny_model, POSITIVES))["sentence_embedding"]
        scores = torch.nn.functional.normalize(a, dim=-1) @ torch.nn.functional.normalize(p, dim=-1).T * 20
        expected = torch.nn.functional.cross_entropy(scores, torch.arange(4))
        torch.testing.assert_close(value, expected, atol=1e-5, rtol=1e-5)
        assert loss([features(tiny_model, TEXTS[:1])]) == 0  # one text: nothing to repel


def test_alternate_schedule_switches_terms_every_step(tiny_model):
    loss = GLAELoss(tiny_model, schedule="alternate")
    loss.train()
    batch = features(tiny_model, TEXTS)
    seen = []
    for _ in range(4):
        seen.append(loss.active_terms())
        loss([batch])
    assert seen == [(True, False), (False, True), (True, False), (False, True)]


def test_bad_loss_settings_are_refused(tiny_model):
    with pytest.raises(ValueError, match="repulsion must be"):
        GLAELoss(tiny_model, repulsion="other")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="schedule must be"):
        GLAELoss(tiny_model, schedule="mixed")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="must be >= 0 and not all 0"):
        GLAELoss(tiny_model, repulsion_weight=0, reconstruction_weight=0)


def train(model, output_dir, max_steps, resume=None):
    arguments = SentenceTransformerTrainingArguments(
        output_dir=str(output_dir),
        max_steps=max_steps,
        per_device_train_batch_size=4,
        learning_rate=1e-3,
        save_strategy="steps",
        save_steps=2,
        logging_steps=1,
        seed=3,
        report_to="none",
        use_cpu=True,
    )
    dataset = Dataset.from_dict({"anchor": TEXTS, "positive": POSITIVES})  # one batch: order cannot differ
    trainer = SentenceTransformerTrainer(model=model, args=arguments, train_dataset=dataset, loss=GLAELoss(model))
    trainer.train(resume_from_checkpoint=resume)
    return [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]


def test_trainer_lowers_the_loss_and_resume_continues_exactly(tiny_backbone, tmp_path):
    from sentence_transformers import SentenceTransformer

    from glae_st import GLAEEmbedding

    def fresh():
        torch.manual_seed(0)
        module = GLAEEmbedding(tiny_backbone, max_seq_length=32)
        module.add_lora()
        return SentenceTransformer(modules=[module], device="cpu")

    straight = train(fresh(), tmp_path / "straight", max_steps=6)
    assert straight[-1] < straight[0]
    resumed = train(fresh(), tmp_path / "resumed", max_steps=6, resume=str(tmp_path / "straight" / "checkpoint-4"))
    assert resumed[-2:] == pytest.approx(straight[-2:], rel=1e-4)  # steps 5 and 6 as if never interrupted


def test_distillation_is_zero_for_the_students_own_geometry_and_pulls_towards_the_teacher(tiny_model):
    loss = GLAELoss(tiny_model, repulsion_weight=0.0, reconstruction_weight=0.0, distillation_weight=1.0)
    anchors, positives = features(tiny_model, TEXTS), features(tiny_model, POSITIVES)
    with torch.no_grad():
        a = tiny_model(features(tiny_model, TEXTS))["sentence_embedding"]
        p = tiny_model(features(tiny_model, POSITIVES))["sentence_embedding"]
        # a teacher that is a rotation of the student (another dimension, same cosines) agrees with it exactly
        rotation = torch.linalg.qr(torch.randn(a.shape[1] + 8, a.shape[1] + 8))[0][:, : a.shape[1]]
        same_geometry = torch.stack([a @ rotation.T, p @ rotation.T], dim=1)  # (batch, 2 columns, 72)
        assert loss([anchors, positives], same_geometry).abs() < 1e-4
        other = torch.randn(len(TEXTS), 2, 16)
        disagreement = loss([anchors, positives], other)
    assert disagreement > 1e-3
    # the term follows the definition: KL(teacher || student) of in-batch softmax(cos / tau) without the diagonal
    student = torch.nn.functional.normalize(torch.cat([a, p]), dim=-1)
    teacher = torch.nn.functional.normalize(torch.cat([other[:, 0], other[:, 1]]), dim=-1)
    eye = torch.eye(8, dtype=torch.bool)
    log_s = torch.log_softmax((student @ student.T / 0.05).masked_fill(eye, -torch.inf), -1).masked_fill(eye, 0)
    log_t = torch.log_softmax((teacher @ teacher.T / 0.05).masked_fill(eye, -torch.inf), -1).masked_fill(eye, 0)
    expected = (log_t.exp() * (log_t - log_s)).sum(-1).mean()
    torch.testing.assert_close(disagreement, expected, atol=1e-4, rtol=1e-4)
    tiny_model[0].add_lora()
    tiny_model.train()
    loss([features(tiny_model, TEXTS)], other[:, :1]).backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for n, p in tiny_model.named_parameters() if "lora_B" in n)


def test_distillation_refuses_missing_or_misshapen_teacher_labels(tiny_model):
    loss = GLAELoss(tiny_model, distillation_weight=1.0)
    batch = [features(tiny_model, TEXTS)]
    for labels in (None, torch.randn(len(TEXTS), 16), torch.randn(len(TEXTS), 2, 16)):
        with pytest.raises(ValueError, match="needs a label of shape \\(batch, 1 text columns"):
            loss(batch, labels)
    with pytest.raises(ValueError, match="distillation_weight must be >= 0"):
        GLAELoss(tiny_model, distillation_weight=-1.0)
    with pytest.raises(ValueError, match="distillation_temperature must be > 0"):
        GLAELoss(tiny_model, distillation_weight=1.0, distillation_temperature=0.0)
