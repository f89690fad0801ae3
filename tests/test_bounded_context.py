"""Training the long-text recurrence (paper Fig. 2 and 3): BoundedContextLoss and its data, on the tiny model."""

from __future__ import annotations

import pytest
import torch
from sentence_transformers import SentenceTransformer

from glae_st import GLAEEmbedding, corpora
from glae_st.long_text import compress_context, context_embeds
from glae_st.losses import BoundedContextLoss
from training import data

ARTICLE = (
    "The council met on Tuesday to discuss the new bridge over the river. Officials said the work would start in "
    "March and cost 40 million pounds. Residents asked about the noise, and the mayor promised a public meeting in "
    "the town hall before any digging begins. The last bridge was built in 1962 and has been closed since the flood."
)


@pytest.fixture
def iterative_model(tiny_backbone: str) -> SentenceTransformer:
    torch.manual_seed(0)
    return SentenceTransformer(
        modules=[GLAEEmbedding(tiny_backbone, max_seq_length=8, long_text="iterative")], device="cpu"
    )


@pytest.fixture
def news_fixture(monkeypatch: pytest.MonkeyPatch) -> None:
    articles = tuple((f"Title {i}", ARTICLE.replace("Tuesday", f"day {i}")) for i in range(30))
    monkeypatch.setattr(corpora, "news_articles", lambda: articles)


def test_the_loss_is_the_nll_that_generate_long_context_gives_the_continuation(iterative_model):
    """The training objective is exactly what benchmarks/long_text.py measures: the continuation's NLL after the
    memory of the context (built through the recurrence) in the continue prompt."""
    module = iterative_model[0]
    ids = module.tokenizer(ARTICLE, add_special_tokens=False).input_ids
    context, continuation = ids[:24], ids[24:40]  # three chunks of 8, then what follows
    loss = BoundedContextLoss(iterative_model)
    features = [module.token_features([context], iterative=True), module.token_features([continuation], True)]
    value = loss(features)

    (bounded,) = compress_context(module, [context + continuation[:1]], window=1)  # memory of `context` alone
    prompt, _ = context_embeds(module, [bounded])  # ... then continuation[0] as the window
    targets = torch.tensor(continuation)
    inputs = torch.cat([prompt[0, :-1], module.causal_lm.get_input_embeddings()(targets)])[None]
    logits = module.causal_lm(inputs_embeds=inputs).logits[0, prompt.shape[1] - 2 : -1]
    expected = torch.nn.functional.cross_entropy(logits, targets)
    torch.testing.assert_close(value, expected, atol=1e-4, rtol=1e-4)


def test_the_gradient_reaches_the_bridge_and_the_adapter(iterative_model):
    module = iterative_model[0]
    module.add_lora()
    ids = module.tokenizer(ARTICLE, add_special_tokens=False).input_ids
    features = [module.token_features([ids[:24]], iterative=True), module.token_features([ids[24:40]], True)]
    BoundedContextLoss(iterative_model)(features).backward()
    assert module.bridge.projection.weight.grad.abs().sum() > 0
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for n, p in module.named_parameters() if "lora_" in n)


def test_training_makes_the_memory_carry_what_the_continuation_needs(wide_tiny_backbone):
    """Two contexts, each followed by its own continuation: after training, each continuation is far likelier after
    the memory of its own context than after the other's, so the memory, not the prompt, predicts it."""
    torch.manual_seed(0)
    model = SentenceTransformer(
        modules=[GLAEEmbedding(wide_tiny_backbone, max_seq_length=8, long_text="iterative")], device="cpu"
    )
    module = model[0]
    module.add_lora()
    contexts = ["The quick brown fox jumps over the lazy dog again and again.", "Rain is expected in the north."]
    continuations = [" Stocks fell sharply", " A cat sat down"]
    target_ids = [module.tokenizer(text, add_special_tokens=False).input_ids for text in continuations]
    loss = BoundedContextLoss(model)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(60):
        optimizer.zero_grad()
        loss([module.preprocess(contexts), module.preprocess(continuations)]).backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        memories = model.encode(contexts, convert_to_tensor=True)
        own, _ = module.text_log_likelihoods(memories, target_ids, continues=True)
        swapped, _ = module.text_log_likelihoods(memories.flip(0), target_ids, continues=True)
    assert (own > swapped + 2.0).all()


def test_the_loss_needs_the_iterative_mode_and_two_columns(tiny_backbone, iterative_model):
    truncating = SentenceTransformer(modules=[GLAEEmbedding(tiny_backbone, max_seq_length=8)], device="cpu")
    with pytest.raises(ValueError, match="needs long_text='iterative'"):
        BoundedContextLoss(truncating)
    features = iterative_model[0].preprocess([ARTICLE])
    with pytest.raises(ValueError, match=r"\(context, continuation\) columns, got 1"):
        BoundedContextLoss(iterative_model)([features])


def test_continuation_rows_are_consecutive_pieces_of_one_article(iterative_model, news_fixture):
    tokenizer = iterative_model[0].tokenizer
    rows = data.continuation_pairs(tokenizer, chunk_tokens=8, max_chunks=3, continuation_tokens=12, seed=1)
    assert len(rows) == 24  # the 30 fixture articles less the 10 % test and 10 % dev ones
    articles = [
        tokenizer.decode(tokenizer(text, add_special_tokens=False).input_ids) for _, text in corpora.news_articles()
    ]
    lengths = set()
    for row in rows:
        assert any(article.startswith(row["context"] + row["continuation"]) for article in articles)  # no gap
        lengths.add(round(len(tokenizer(row["context"], add_special_tokens=False).input_ids) / 8))
    assert lengths == {1, 2, 3}


def test_long_document_queries_come_from_past_the_first_chunk(iterative_model, news_fixture):
    tokenizer = iterative_model[0].tokenizer
    rows = data.long_document_pairs(tokenizer, chunk_tokens=8, chunks=(3, 5), query_tokens=6, seed=2)
    assert len(rows) == 24
    for row in rows:
        document = tokenizer(row["positive"], add_special_tokens=False).input_ids
        assert 3 * 8 - 1 <= len(document) <= 5 * 8 + 1
        assert row["anchor"] in row["positive"]
        first_chunk = tokenizer.decode(document[:8])
        assert not first_chunk.strip().startswith(row["anchor"])
    train = {row["positive"].split(" to discuss")[0] for row in data.long_document_pairs(tokenizer, 8, seed=3)}
    assert "The council met on day 0" not in train and "The council met on day 5" not in train  # test / dev
