"""EmbeddingTranslator (ridge or MLP map between embedding spaces) and the inversion audit, on the tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from sentence_transformers import SentenceTransformer

import glae_st
from glae_st import audit
from glae_st.saved_model import weights_revision
from glae_st.translator import EmbeddingTranslator
from tests.test_cli import assert_one_line_error, files_under, run_cli

TEXTS = [f"Item {i} costs {i * 3} pounds in Leeds." for i in range(100)] + ["A cat sits on the mat."]


def affine_pairs(rows: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    source = rng.normal(size=(rows, 8))
    weight, bias = rng.normal(size=(8, 5)), rng.normal(size=5)
    return source, source @ weight + bias, weight, bias


def test_the_fit_recovers_an_affine_map_and_chooses_the_smallest_penalty():
    source, target, weight, _ = affine_pairs()
    translator = EmbeddingTranslator.fit(source, target, "source-model", "glae-model", hidden_features=(0,))
    assert translator.ridge_alpha == min(glae_st.translator.RIDGE_ALPHAS)  # noiseless: least shrinkage wins
    np.testing.assert_allclose(translator.projection.weight.detach().numpy(), weight.T, atol=1e-3)
    np.testing.assert_allclose(translator.translate(source).numpy(), target, atol=1e-2)
    assert (translator.in_features, translator.out_features, translator.fit_texts) == (8, 5, 300)


def test_a_noisy_target_gets_more_shrinkage_than_a_clean_one():
    source, target, _, _ = affine_pairs(rows=60)
    noisy = target + np.random.default_rng(1).normal(scale=30.0, size=target.shape)
    assert (
        EmbeddingTranslator.fit(source, noisy, "s", "t", hidden_features=(0,)).ridge_alpha
        > EmbeddingTranslator.fit(source, target, "s", "t", hidden_features=(0,)).ridge_alpha
    )


def nonlinear_pairs(rows: int = 2000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Source vectors off the origin and at scale 10, and targets a nonlinear function of them far from 0."""
    rng = np.random.default_rng(seed)
    source = rng.normal(size=(rows, 4))
    target = np.concatenate([np.sin(2 * source), source[:, :2] * source[:, 2:]], axis=1)
    return 10 * source + 5, target + 3


def test_on_a_nonlinear_map_the_mlp_wins_on_dev_and_maps_raw_vectors():
    source, target = nonlinear_pairs()
    ridge = EmbeddingTranslator.fit(source, target, "s", "t", hidden_features=(0,))
    chosen = EmbeddingTranslator.fit(source, target, "s", "t", hidden_features=(0, 64), epochs=60)
    assert (chosen.hidden_features, chosen.ridge_alpha, chosen.fit_texts) == (64, None, 1900)  # 5 % held out
    assert chosen.dev_cosine > ridge.dev_cosine + 0.02
    # the standardisation is folded into the layers: raw source vectors in, raw target vectors out
    fresh_source, fresh_target = nonlinear_pairs(rows=500, seed=1)
    error = np.mean((chosen.translate(fresh_source).numpy() - fresh_target) ** 2)
    assert error < 0.5 * np.mean((ridge.translate(fresh_source).numpy() - fresh_target) ** 2)


def test_on_an_affine_map_ridge_beats_the_mlp_on_dev():
    source, target, _, _ = affine_pairs()
    chosen = EmbeddingTranslator.fit(source, target, "s", "t", hidden_features=(0, 64))
    assert chosen.hidden_features == 0 and chosen.dev_cosine > 0.999
    # the ridge's dev cosine is that of its fit without the dev rows, as the MLP's is
    source, target = nonlinear_pairs(rows=200)
    ridge = EmbeddingTranslator.fit(source, target, "s", "t", hidden_features=(0,))
    dev = np.random.default_rng(0).permutation(200)[:10]
    assert ridge.dev_cosine < glae_st.translator._mean_cosine(ridge.translate(source[dev]).numpy(), target[dev])


@pytest.mark.parametrize("hidden_features", [0, 64])
def test_save_and_load_keep_the_map_and_both_model_names(tmp_path: Path, hidden_features: int):
    source, target, _, _ = affine_pairs()
    translator = EmbeddingTranslator.fit(
        source, target, "all-MiniLM-L6-v2", "glae-smollm2-135m", hidden_features=(hidden_features,), epochs=2
    )
    translator.save(str(tmp_path / "translator"))
    assert sorted(p.name for p in (tmp_path / "translator").iterdir()) == ["config.json", "model.safetensors"]
    loaded = EmbeddingTranslator.load(str(tmp_path / "translator"))
    assert (loaded.source_model, loaded.target_model) == ("all-MiniLM-L6-v2", "glae-smollm2-135m")
    assert (loaded.hidden_features, loaded.dev_cosine) == (hidden_features, translator.dev_cosine)
    torch.testing.assert_close(loaded.translate(source[:4]), translator.translate(source[:4]))
    with pytest.raises(FileNotFoundError, match="holds no saved EmbeddingTranslator"):
        EmbeddingTranslator.load(str(tmp_path))


def test_bad_shapes_and_foreign_models_are_refused():
    source, target, _, _ = affine_pairs()
    with pytest.raises(ValueError, match="one row per text"):
        EmbeddingTranslator.fit(source, target[:-1], "s", "t")
    with pytest.raises(ValueError, match="at least 20 texts"):
        EmbeddingTranslator.fit(source[:10], target[:10], "s", "t")
    for widths in ((), (0, -8)):
        with pytest.raises(ValueError, match="hidden_features needs at least one width, 0 for ridge or a positive"):
            EmbeddingTranslator.fit(source, target, "s", "t", hidden_features=widths)
    translator = EmbeddingTranslator.fit(source, target, "all-MiniLM-L6-v2", "glae", hidden_features=(0,))
    with pytest.raises(ValueError, match=r"maps 8-dimensional all-MiniLM-L6-v2 embeddings; got shape \(2, 384\)"):
        translator.translate(np.zeros((2, 384)))
    with pytest.raises(ValueError, match="fitted for all-MiniLM-L6-v2 .8 dimensions., not for other .8 dimensions."):
        translator.check_source("other", 8)


def test_a_translator_refuses_glae_weights_other_than_its_targets(tmp_path: Path):
    source, target, _, _ = affine_pairs()
    translator = EmbeddingTranslator.fit(source, target, "s", "glae", hidden_features=(0,), target_revision="abc")
    translator.save(str(tmp_path / "translator"))
    loaded = EmbeddingTranslator.load(str(tmp_path / "translator"))
    assert loaded.target_revision == "abc"
    loaded.check_target("abc")
    loaded.check_target(None)  # a Hub model: its revision is not known here
    with pytest.raises(ValueError, match="at weights revision abc, but the GLAE model given has revision def"):
        loaded.check_target("def")


def test_as_a_module_it_turns_a_model_into_one_that_embeds_in_glae_space(tiny_model):
    texts = TEXTS[:4]
    source = tiny_model.encode(TEXTS)
    translator = EmbeddingTranslator.fit(source, source[:, ::-1].copy(), "tiny", "tiny-reversed", hidden_features=(0,))
    chained = SentenceTransformer(modules=[*tiny_model, translator], device="cpu")
    np.testing.assert_allclose(chained.encode(texts), translator.translate(tiny_model.encode(texts)).numpy(), atol=1e-5)


def test_names_and_numbers_recovered_count_verbatim_matches():
    references = ["Boris Johnson met Theresa May on 11 March.", "Stocks fell 3.5 percent."]
    predictions = ["Johnson met someone on 12 March.", "Stocks fell 3.5 percent."]
    share = audit.leakage(predictions, references)
    assert share["names_recovered"] == pytest.approx(2 / 4)  # Johnson and March of Johnson, Theresa, May, March
    assert share["numbers_recovered"] == pytest.approx(1 / 2)
    assert share["exact_match"] == 0.5 and share["texts"] == 2
    assert audit.recovered_share(audit._NUMBER, ["x"], ["no digits here"]) is None


def test_fitting_texts_draw_evenly_and_leave_out_the_audited_texts(monkeypatch):
    corpora = {"a": lambda: [f"a {i}" for i in range(50)], "b": lambda: [f"b {i}" for i in range(50)] + ["a 3"]}
    monkeypatch.setattr(audit, "FITTING_CORPORA", corpora)
    fitting = audit.fitting_texts(40, exclude=["a 3", "b 7"])
    assert len(fitting) == len(set(fitting)) == 40
    assert sum(text.startswith("a") for text in fitting) == 20
    assert audit.fitting_texts(100, exclude=["a 3", "b 7"]) == audit.fitting_texts(100, exclude={"b 7", "a 3"})
    assert {"a 3", "b 7"}.isdisjoint(audit.fitting_texts(100, exclude=["a 3", "b 7"]))
    assert "a 3" in audit.fitting_texts(100)
    assert audit.fitting_texts(40) == audit.fitting_texts(100)[:40]  # a smaller fit is a prefix of a larger one


def test_an_audit_of_the_model_itself_decodes_like_the_model(tiny_model):
    """With GLAE as the foreign model the fitted map is close to the identity, so the audit's decodes are the
    model's own decodes, and every text lands in exactly one length bucket."""
    translator = audit.fit_translator(tiny_model, tiny_model, TEXTS, "tiny", "tiny")
    translated = translator.translate(tiny_model.encode(TEXTS))
    cosines = torch.nn.functional.cosine_similarity(translated, torch.from_numpy(tiny_model.encode(TEXTS)))
    assert cosines.mean() > 0.99
    report = audit.audit(tiny_model, TEXTS[:6], translator, tiny_model, "tiny", examples=3)
    own = glae_st.decode(tiny_model, tiny_model.encode(TEXTS[:6]))
    assert [e["decoded"] for e in report["examples"]] == own[:3]
    assert sum(bucket["texts"] for bucket in report["buckets"]) == report["overall"]["texts"] == 6
    assert 0.0 <= report["overall"]["token_f1"] <= 1.0
    with pytest.raises(ValueError, match="No texts to audit"):
        audit.audit(tiny_model, ["  "], translator, tiny_model, "tiny")
    with pytest.raises(ValueError, match="fitted for tiny"):
        audit.audit(tiny_model, TEXTS, translator, tiny_model, "all-MiniLM-L6-v2")
    translator.target_revision = "abc"
    with pytest.raises(ValueError, match="revision abc, but the GLAE model given has revision def"):
        audit.audit(tiny_model, TEXTS, translator, tiny_model, "tiny", glae_revision="def")


def test_the_audited_model_reranks_to_its_closest_candidate(tiny_model):
    from glae_st.decoding import generate_texts

    translator = audit.fit_translator(tiny_model, tiny_model, TEXTS, "tiny", "tiny")
    originals = tiny_model.encode(TEXTS[:4])
    vectors = translator.translate(originals)
    chosen = audit.foreign_reranked(tiny_model, tiny_model, originals, vectors, 3, batch_size=2)
    with torch.inference_mode():
        candidates = generate_texts(tiny_model[0], torch.as_tensor(vectors), 64, 3, 3)
    for row, text in enumerate(chosen):
        pool = candidates[3 * row : 3 * row + 3]
        assert text in pool
        closeness = torch.nn.functional.cosine_similarity(
            torch.as_tensor(tiny_model.encode(pool)), torch.as_tensor(originals[row : row + 1])
        )
        assert closeness[pool.index(text)] == closeness.max()
    report = audit.audit(tiny_model, TEXTS[:4], translator, tiny_model, "tiny", 3, foreign_rerank=True)
    assert report["models"]["reranked_by"] == "audited model"
    assert [example["decoded"] for example in report["examples"]] == chosen


@pytest.fixture
def audit_inputs(tmp_path: Path) -> Path:
    (tmp_path / "texts.txt").write_text("\n".join(TEXTS[:4]) + "\n", encoding="utf-8")
    (tmp_path / "empty.txt").write_text("\n  \n", encoding="utf-8")
    (tmp_path / "report.json").write_text("{}", encoding="utf-8")
    (tmp_path / "not-a-model").mkdir()
    source, target, _, _ = affine_pairs()
    EmbeddingTranslator.fit(source, target, "other-model", "glae", hidden_features=(0,)).save(
        str(tmp_path / "translator")
    )
    stale = EmbeddingTranslator.fit(
        source, target, "all-MiniLM-L6-v2", "glae", hidden_features=(0,), target_revision="000000000000"
    )
    stale.save(str(tmp_path / "stale-translator"))
    return tmp_path


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--texts", "{d}/empty.txt", "--output", "{d}/new.json"], "has no texts; write one text per line"),
        (["--texts", "{d}/missing.txt", "--output", "{d}/new.json"], "no such file"),
        (["--texts", "{d}/texts.txt", "--output", "{d}/report.json"], "already exists; pass --force"),
        (["--texts", "{d}/texts.txt", "--output", "{d}/report.txt"], "ending in .json"),
        (
            ["--texts", "{d}/texts.txt", "--output", "{d}/new.json", "--translator", "{d}/translator"],
            "not for all-MiniLM-L6-v2",
        ),
        (
            ["--texts", "{d}/texts.txt", "--output", "{d}/new.json", "--translator", "{d}/stale-translator"],
            "maps into the space of glae at weights revision 000000000000, but the GLAE model given has revision",
        ),
    ],
)
def test_bad_audit_input_is_one_error_line_before_a_model_loads(audit_inputs, capsys, monkeypatch, arguments, message):
    monkeypatch.setattr(audit, "fit_translator", lambda *a, **k: pytest.fail("a model was used"))
    before = files_under(audit_inputs)
    filled = [a.replace("{d}", str(audit_inputs)) for a in arguments]
    code, err, _ = run_cli(["audit", "--model", "all-MiniLM-L6-v2", *filled], capsys)
    assert_one_line_error(code, err, message)
    assert files_under(audit_inputs) == before


def test_a_folder_that_is_no_sentence_transformers_model_is_refused(audit_inputs, capsys):
    arguments = ["--texts", f"{audit_inputs}/texts.txt", "--output", f"{audit_inputs}/new.json"]
    code, err, _ = run_cli(["audit", "--model", str(audit_inputs / "not-a-model"), *arguments], capsys)
    assert_one_line_error(code, err, "is not a sentence-transformers model folder")
    assert not (audit_inputs / "new.json").exists()


def test_the_audit_command_writes_the_report_and_its_plot(saved_model_dir, audit_inputs, capsys):
    output = audit_inputs / "out" / "leak.json"
    output.parent.mkdir()
    arguments = ["--texts", f"{audit_inputs}/texts.txt", "--output", str(output), "--fit-texts", "80"]
    arguments += ["--save-translator", str(audit_inputs / "fitted")]
    code, err, _ = run_cli(
        ["--model", str(saved_model_dir), "audit", "--model", str(saved_model_dir), *arguments], capsys
    )
    assert code == 0, err
    report = json.loads(output.read_text())
    assert set(report) >= {"overall", "buckets", "examples"} and report["overall"]["texts"] == 4
    assert output.with_suffix(".png").stat().st_size > 0
    saved = EmbeddingTranslator.load(str(audit_inputs / "fitted"))
    # ridge is refitted on all 80 texts; an MLP is trained on the 76 that are not its 5 % dev rows
    assert saved.fit_texts == (80 if saved.hidden_features == 0 else 76) and saved.dev_cosine is not None
    assert saved.target_revision == weights_revision(saved_model_dir) == report["models"]["glae_revision"]
    assert err[-1].startswith(f"glae: {saved_model_dir.name} embeddings of 4 texts decode with token F1")


def test_a_translators_folder_without_the_models_translator_is_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    from benchmarks import inversion_audit

    with pytest.raises(SystemExit) as exit_info:
        inversion_audit.parse_args(["--models", "all-MiniLM-L6-v2", "--translators", str(tmp_path / "none")])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert "has no translator of all-MiniLM-L6-v2" in error and "Traceback" not in error
