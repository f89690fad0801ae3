"""Text to vector: tokenising with the encode prompt, and the layer -2 state at ``<embedding>``, with the prompt
prefix's key/value cache, the last layer skipped, and the Fig. 3 recurrence for long texts."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from transformers import DynamicCache
from transformers.masking_utils import create_causal_mask

from glae_st.adapters import MAIN_ADAPTER, RECURRENCE_ADAPTER
from glae_st.util import padded_positions, validate_texts

logger = logging.getLogger(__name__)

PrefixKeyValues = list[tuple[torch.Tensor, torch.Tensor]]


def _checkpointing(model: nn.Module) -> bool:
    """Whether gradient (activation) checkpointing is on, under the attribute name of the installed transformers."""
    if hasattr(type(model), "is_activation_checkpointing"):
        return bool(model.is_activation_checkpointing)
    return bool(getattr(model, "is_gradient_checkpointing", False))


LEAD_CHUNK_WEIGHT = 2.0
"""The weight of a text's first chunk in ``long_text="lead_mean"`` (every other chunk weighs 1), chosen on dev
among 2, 3 and 4 (``python -m benchmarks.long_documents``)."""
CHUNK_MEAN_LEAD_WEIGHTS = {"chunk_mean": 1.0, "lead_mean": LEAD_CHUNK_WEIGHT}
"""The ``long_text`` modes that embed each chunk of a long text as a short text and average the chunk vectors, each
with the weight of the first chunk in its mean."""


def chunk_means(states: torch.Tensor, chunk_counts: Sequence[int], lead_weight: float = 1.0) -> torch.Tensor:
    """One row per text from consecutive chunk rows: a text of one chunk keeps its row as it is; longer texts get the
    mean of their rows, the first weighted ``lead_weight`` and every other 1, rescaled to the rows' mean L2 norm (the
    scale the decoder and ``embedding_norm`` expect)."""
    rows = []
    for chunks in states.split(list(chunk_counts)):
        if len(chunks) == 1:
            rows.append(chunks[0])
            continue
        mean = chunks.mean(dim=0)
        if lead_weight != 1.0:  # the first chunk counts lead_weight times
            mean = (mean * len(chunks) + (lead_weight - 1.0) * chunks[0]) / (len(chunks) + lead_weight - 1.0)
        rows.append(mean * (chunks.norm(dim=1).mean() / mean.norm().clamp_min(1e-6)))
    return torch.stack(rows)


class EncodingMixin:
    """How a :class:`~glae_st.GLAEEmbedding` embeds text: :meth:`preprocess` tokenises ``text</text><embedding>``
    (the shared prompt prefix is cached, not tokenised per text), :meth:`forward` returns the layer -2 state at
    ``<embedding>``; with ``long_text="chunk_mean"`` or ``"lead_mean"`` a long text's chunks are embedded as short
    texts and averaged (:func:`chunk_means`), and with ``long_text="iterative"`` later chunks are folded in by
    :meth:`iterate` (Fig. 3)."""

    def preprocess(self, inputs: Sequence[str], prompt: str | None = None, **kwargs: Any) -> dict[str, torch.Tensor]:
        """Tokenise texts into ``text + </text><embedding>``; the shared prompt prefix is added in :meth:`forward`.

        Args:
            inputs: Texts to embed.
            prompt: An optional instruction (sentence-transformers ``prompts``) placed before the text inside
                ``<text>``.

        Raises:
            TypeError: An item is not a string.
            ValueError: An item is empty or only whitespace.
        """
        texts = validate_texts(inputs)
        if prompt:
            texts = [prompt + text for text in texts]
        token_ids = self.tokenizer(texts, add_special_tokens=False, split_special_tokens=True)["input_ids"]
        if self.long_text in CHUNK_MEAN_LEAD_WEIGHTS:
            return self.chunk_features(token_ids)
        return self.token_features(token_ids, iterative=self.long_text == "iterative")

    def chunk_features(self, token_ids: Sequence[Sequence[int]]) -> dict[str, Any]:
        """Encode features of every ``max_seq_length``-token chunk of every text, one row each, and ``chunk_counts``
        (chunks per text), for ``long_text="chunk_mean"`` and ``"lead_mean"``: :meth:`forward` averages each text's
        rows."""
        chunk = self.max_seq_length
        chunks = [[list(ids[i : i + chunk]) for i in range(0, len(ids), chunk)] for ids in token_ids]
        features = self.token_features([piece for pieces in chunks for piece in pieces], iterative=False)
        features["chunk_counts"] = [len(pieces) for pieces in chunks]
        return features

    def token_features(self, token_ids: Sequence[Sequence[int]], iterative: bool) -> dict[str, Any]:
        """Encode features of tokenised texts: the first ``max_seq_length`` tokens of each, and with ``iterative``
        the rest as ``continuation_ids`` chunks of that size (otherwise the rest is dropped, with a warning)."""
        if any(len(ids) == 0 for ids in token_ids):
            raise ValueError("A text has no tokens; an empty text has nothing to embed.")
        chunk = self.max_seq_length
        features = self.pad([list(ids[:chunk]) + self.encode_suffix_ids for ids in token_ids])
        if iterative:
            if not self.trained_recurrence and not self._truncation_warned and any(len(i) > chunk for i in token_ids):
                self._truncation_warned = True
                logger.warning(
                    "long_text='iterative' on a model that was not trained for the recurrence (trained_recurrence is "
                    "False): untrained, it finds long documents less well than truncation (python -m benchmarks.long_text). "
                    "Use long_text='lead_mean', or a model trained with it such as the bundled default."
                )
            features["continuation_ids"] = [
                [list(ids[i : i + chunk]) for i in range(chunk, len(ids), chunk)] for ids in token_ids
            ]
            return features
        if not self._truncation_warned and any(len(ids) > chunk for ids in token_ids):
            self._truncation_warned = True  # once per encode call: sentence-transformers calls eval() at its start
            logger.warning(
                "Some texts are longer than max_seq_length=%d tokens and were truncated to it. Raise "
                "model.max_seq_length (up to %d for this backbone) or set long_text='lead_mean' to keep all of them "
                "(glae encode: --max-seq-length N, or --long-text lead_mean).",
                chunk,
                self.max_text_tokens,
            )
        return features

    def text_token_ids(self, features: dict[str, Any]) -> list[list[int]]:
        """The token ids of each text that encode features carry (every chunk with ``long_text="iterative"``)."""
        suffix_length = len(self.encode_suffix_ids)
        first_chunks = [
            ids[mask.bool()].tolist()[:-suffix_length]
            for ids, mask in zip(features["input_ids"], features["attention_mask"])
        ]
        continuations = features.get("continuation_ids") or [[] for _ in first_chunks]
        texts = [
            first + [token for chunk in chunks for token in chunk] for first, chunks in zip(first_chunks, continuations)
        ]
        if "chunk_counts" not in features:
            return texts
        pieces = iter(texts)  # a text's chunks are consecutive rows
        return [[token for _ in range(count) for token in next(pieces)] for count in features["chunk_counts"]]

    def pad(self, sequences: Sequence[Sequence[int]]) -> dict[str, torch.Tensor]:
        """Pad token id lists to one batch on ``padding_side``."""
        width = max(len(ids) for ids in sequences)
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        input_ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(sequences), width), dtype=torch.long)
        for row, ids in enumerate(sequences):
            columns = slice(width - len(ids), width) if self.padding_side == "left" else slice(0, len(ids))
            input_ids[row, columns] = torch.tensor(ids, dtype=torch.long)
            attention_mask[row, columns] = 1
        return {"input_ids": input_ids, "attention_mask": attention_mask}

    # ------------------------------------------------------------------ encoding
    def forward(self, features: dict[str, torch.Tensor], **kwargs: Any) -> dict[str, torch.Tensor]:
        """Add ``sentence_embedding``: the layer -2 state at the last real token (``<embedding>``) of each row."""
        input_ids, attention_mask = features["input_ids"], features["attention_mask"]
        self.use_adapter(MAIN_ADAPTER)
        # gradient checkpointing recomputes layers without their key/value cache, the prefix's included
        checkpointing = self.training and _checkpointing(self.base_lm)
        with self.inference_autocast():
            if self.prefix_caching and not checkpointing:
                prefix = self._prefix_key_values()
                states = self.layer_minus_two_states(input_ids, attention_mask, prefix)
            else:
                prefix_ids = torch.tensor(self.encode_prefix_ids, device=input_ids.device).expand(len(input_ids), -1)
                states = self.layer_minus_two_states(
                    torch.cat([prefix_ids, input_ids], dim=1),
                    torch.cat([torch.ones_like(prefix_ids), attention_mask], dim=1),
                )
            if features.get("continuation_ids"):
                states = self._embed_continuations(states, features["continuation_ids"])
        if "chunk_counts" in features:
            states = chunk_means(states, features["chunk_counts"], CHUNK_MEAN_LEAD_WEIGHTS[self.long_text])
        if not self.training and not bool(torch.isfinite(states).all()):
            from glae_st.backbone import damaged_weights_hint

            bad = int((~torch.isfinite(states).all(dim=1)).sum())
            raise ValueError(
                f"The model computed NaN or infinite embeddings for {bad} of {len(states)} texts; they are not "
                f"returned. {damaged_weights_hint()}"
            )
        features["sentence_embedding"] = states if self.training else states.float()
        return features

    def embed_token_ids(self, token_ids: Sequence[Sequence[int]], iterative: bool = True) -> torch.Tensor:
        """(batch, hidden) embeddings of already tokenised texts (read in chunks when ``iterative``)."""
        features = self.token_features(token_ids, iterative)
        features.update({name: features[name].to(self.device) for name in ("input_ids", "attention_mask")})
        return self.forward(features)["sentence_embedding"]

    def _embed_continuations(self, states: torch.Tensor, continuations: list[list[list[int]]]) -> torch.Tensor:
        """Fold each text's remaining chunks into its embedding, one chunk per round for all texts at once."""
        for round_index in range(max(len(chunks) for chunks in continuations)):
            rows = [row for row, chunks in enumerate(continuations) if len(chunks) > round_index]
            chunk_ids = [continuations[row][round_index] for row in rows]
            updated = self.iterate(states[rows], chunk_ids)
            states = states.index_copy(0, torch.tensor(rows, device=states.device), updated)
        return states

    def iterate(self, previous: torch.Tensor, chunk_ids: Sequence[Sequence[int]]) -> torch.Tensor:
        """One step of the paper's Fig. 3: ``Embed(previous embedding + chunk)``.

        Reads ``Encode these embedding and text into 1-word length embedding: <embedding>{previous}</embedding>
        <text>{chunk}</text><embedding>`` (the vector enters through the bridge, as in decoding) and returns the
        layer -2 state at the final ``<embedding>``.

        Args:
            previous: (batch, hidden) embeddings of everything before the chunk.
            chunk_ids: Per row, the token ids of the next chunk.

        Raises:
            ValueError: A chunk is empty or longer than :attr:`max_text_tokens`, or the batch sizes differ.
        """
        if len(chunk_ids) != len(previous):
            raise ValueError(
                f"Got {len(previous)} embeddings but {len(chunk_ids)} chunks; pass one chunk per embedding."
            )
        for row, ids in enumerate(chunk_ids):
            if not 0 < len(ids) <= self.max_text_tokens:
                raise ValueError(
                    f"Chunk {row} has {len(ids)} tokens; a chunk needs 1 to {self.max_text_tokens} tokens (the "
                    "backbone's context minus the prompt). Drop empty chunks and split longer ones."
                )
        self.use_adapter(RECURRENCE_ADAPTER)
        batch = self.pad([self.iterate_suffix_ids + list(ids) + self.encode_suffix_ids for ids in chunk_ids])
        batch = {name: tensor.to(previous.device) for name, tensor in batch.items()}
        embed_tokens = self.decoder.embed_tokens
        prefix = embed_tokens(torch.tensor([self.iterate_prefix_ids], device=previous.device))
        slot = self.bridge(previous)[:, None]
        inputs_embeds = torch.cat([prefix.expand(len(previous), -1, -1), slot, embed_tokens(batch["input_ids"])], dim=1)
        attention_mask = torch.cat(
            [batch["attention_mask"].new_ones(len(previous), prefix.shape[1] + 1), batch["attention_mask"]], dim=1
        )
        return self.layer_minus_two_states(None, attention_mask, inputs_embeds=inputs_embeds)

    def layer_minus_two_states(
        self,
        input_ids: torch.Tensor | None,
        attention_mask: torch.Tensor,
        prefix: PrefixKeyValues | None = None,
        inputs_embeds: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Hidden state of layer -2 at the last real position of each row, without running the last layer.

        Args:
            input_ids: (batch, length) token ids, or None when ``inputs_embeds`` is given.
            attention_mask: (batch, length), 1 for real tokens; padding may be on either side.
            prefix: Per-layer (key, value) of a shared prefix (batch 1) that precedes every row.
            inputs_embeds: (batch, length, hidden) input embeddings instead of ``input_ids``.

        Returns:
            (batch, hidden) states, equal to ``output_hidden_states[-2]`` of the full model at that position.
        """
        decoder = self.decoder
        if inputs_embeds is None:
            inputs_embeds = decoder.embed_tokens(input_ids)
        batch_size = attention_mask.shape[0]
        cache = None
        past_length = 0
        if prefix is not None:
            cache = DynamicCache()
            for layer_index, (keys, values) in enumerate(prefix):
                cache.update(keys.expand(batch_size, -1, -1, -1), values.expand(batch_size, -1, -1, -1), layer_index)
            past_length = prefix[0][0].shape[2]
            attention_mask = torch.cat([attention_mask.new_ones(batch_size, past_length), attention_mask], dim=1)
        position_ids, last_positions = padded_positions(attention_mask[:, past_length:], offset=past_length)
        return self._run_layers(inputs_embeds, attention_mask, position_ids, cache, last_positions)

    def _run_layers(
        self,
        hidden: torch.Tensor,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor,
        cache: DynamicCache | None,
        gather_positions: torch.Tensor | None,
    ) -> torch.Tensor:
        """Run decoder layers 0 .. L-2 (everything before the last layer).

        With ``gather_positions`` the last computed layer runs its MLP only at those positions and (batch, hidden)
        is returned; without, every position is computed and the cache filled (used for the prompt prefix).
        """
        decoder = self.decoder
        causal_mask = create_causal_mask(
            config=decoder.config,
            inputs_embeds=hidden,
            attention_mask=attention_mask,
            cache=cache,
            position_ids=position_ids,
        )
        layer_kwargs = {
            "attention_mask": causal_mask,
            "position_ids": position_ids,
            "position_embeddings": decoder.rotary_emb(hidden, position_ids=position_ids),
            "cache": cache,
            "use_cache": cache is not None,
        }
        layers = decoder.layers[: decoder.config.num_hidden_layers - 1]
        full_layers = layers if gather_positions is None else layers[:-1]
        for index, layer in enumerate(full_layers):
            hidden = layer(hidden, **layer_kwargs)
            if gather_positions is not None and cache is not None:
                cache.layers[index].reset()  # the text's keys/values are never read again: hold one layer's at a time
        if gather_positions is None:
            return hidden
        rows = torch.arange(hidden.shape[0], device=hidden.device)
        last = layers[-1]
        if not all(hasattr(last, name) for name in ("input_layernorm", "self_attn", "post_attention_layernorm", "mlp")):
            return last(hidden, **layer_kwargs)[rows, gather_positions]  # not a pre-norm block: run it whole
        attention_output, _ = last.self_attn(hidden_states=last.input_layernorm(hidden), **layer_kwargs)
        state = (hidden + attention_output)[rows, gather_positions]
        return state + last.mlp(last.post_attention_layernorm(state))

    def _prefix_key_values(self) -> PrefixKeyValues:
        """Key/value cache of the encode prompt prefix; stored across calls at inference, rebuilt when training."""
        reusable = not torch.is_grad_enabled() and not self.training
        if reusable and self._stored_prefix is not None and self._stored_prefix[0][0].device == self.device:
            return self._stored_prefix
        prefix_ids = torch.tensor([self.encode_prefix_ids], device=self.device)
        cache = DynamicCache()
        self._run_layers(
            self.decoder.embed_tokens(prefix_ids),
            torch.ones_like(prefix_ids),
            torch.arange(prefix_ids.shape[1], device=self.device)[None],
            cache,
            gather_positions=None,
        )
        key_values = [(layer.keys, layer.values) for layer in cache.layers]
        self._stored_prefix = key_values if reusable else None
        return key_values
