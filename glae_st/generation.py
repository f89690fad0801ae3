"""Vector to text, and the likelihoods that train it: the decode and continue prompts around a vector, the
backbone's ``generate``, and the NLLs of the reconstruction (L2) and continuation terms."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from glae_st import prompts
from glae_st.adapters import MAIN_ADAPTER, RECURRENCE_ADAPTER


class GenerationMixin:
    """What a :class:`~glae_st.GLAEEmbedding` generates from a vector: the prompt embeddings with the vector in the
    ``<embedding>`` slot (through the bridge), generation with the KV cache, and log-likelihoods of given texts.
    :func:`glae_st.decode` builds on it."""

    def generate(
        self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor, **generate_kwargs: Any
    ) -> torch.LongTensor:
        """The backbone's ``generate`` (KV cache, greedy or beam search) from prompt input embeddings, with the
        adapter that building the prompt made active (:meth:`decode_prompt_embeds`, :meth:`continue_prompt_embeds`).

        The LM head is given contiguous hidden states. At the first step ``generate`` keeps each prompt's last
        position, a strided (batch, 1, hidden) view, and ``torch.matmul`` multiplies such a view with the transposed
        head by expanding the head to one copy per row: for SmolLM2's 49k-token head in bfloat16 and a batch of 32, a
        1.8 GB copy that took most of the decode time on CPUs. With bfloat16 weights on a CPU, attention runs in
        transformers' eager implementation while generating: PyTorch's CPU flash-attention kernel is slow in bfloat16
        for one query per step (it took a fifth of the bf16 decode time; eager attention softmaxes in float32).

        Args:
            inputs_embeds: (batch, length, width) prompt embeddings, e.g. from :meth:`decode_prompt_embeds`.
            attention_mask: (batch, length) mask of the prompt.
            generate_kwargs: Passed to ``generate`` (``max_new_tokens``, ``num_beams``, ``eos_token_id``, ...).
        """
        head = self.causal_lm.get_output_embeddings()
        handle = head.register_forward_pre_hook(lambda _, args: tuple(a.contiguous() for a in args))
        attention = self.base_lm.config._attn_implementation
        eager = self._held_dtype == torch.bfloat16 and self.device.type == "cpu"
        if eager:
            self.base_lm.set_attn_implementation("eager")
        try:
            return self.causal_lm.generate(
                inputs_embeds=inputs_embeds, attention_mask=attention_mask, **generate_kwargs
            )
        finally:
            handle.remove()
            if eager:
                self.base_lm.set_attn_implementation(attention)

    def decode_prompt_embeds(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Input embeddings of ``Decode this embedding into text: <embedding>{vector}</embedding><text>``; the main
        adapter becomes active (generation goes on with it)."""
        self.use_adapter(MAIN_ADAPTER)
        return self._slot_prompt_embeds(embeddings, self.decode_prefix_ids, self.decode_suffix_ids)

    def continue_prompt_embeds(self, memories: torch.Tensor) -> torch.Tensor:
        """Input embeddings of ``Continue the text after this embedding: <embedding>{memory}</embedding><text>``
        (Fig. 2): the model then reads the recent tokens and predicts the ones that follow. The continue prompt is
        trained with the recurrence adapter if the model has one, else with the main adapter (``BoundedContextLoss``),
        and that adapter becomes active."""
        self.use_adapter(RECURRENCE_ADAPTER)
        return self._slot_prompt_embeds(memories, self.continue_prefix_ids, self.continue_suffix_ids)

    def _slot_prompt_embeds(
        self, embeddings: torch.Tensor, prefix_ids: Sequence[int], suffix_ids: Sequence[int]
    ) -> torch.Tensor:
        """``prefix`` + each vector through the bridge + ``suffix``, as (batch, length, width) input embeddings."""
        embed_tokens = self.causal_lm.get_input_embeddings()
        prefix = embed_tokens(torch.tensor([list(prefix_ids)], device=embeddings.device))
        suffix = embed_tokens(torch.tensor([list(suffix_ids)], device=embeddings.device))
        batch_size = embeddings.shape[0]
        slot = self.bridge(embeddings.to(prefix.dtype))[:, None]
        return torch.cat([prefix.expand(batch_size, -1, -1), slot, suffix.expand(batch_size, -1, -1)], dim=1)

    def reconstruction_nll(self, embeddings: torch.Tensor, target_ids: Sequence[Sequence[int]]) -> torch.Tensor:
        """Mean NLL per token of ``text</text>`` given the decode prompt with ``embeddings`` (the paper's L2).

        Args:
            embeddings: (batch, hidden) GLAE embeddings, with gradient.
            target_ids: Per row, the text's token ids (without ``</text>``, which is appended here).
        """
        log_likelihoods, token_counts = self.text_log_likelihoods(embeddings, target_ids)
        return -log_likelihoods.sum() / token_counts.sum()

    def continuation_nll(self, memories: torch.Tensor, target_ids: Sequence[Sequence[int]]) -> torch.Tensor:
        """Mean NLL per token of the text that follows each memory, after the continue prompt (Fig. 2).

        Args:
            memories: (batch, hidden) GLAE embeddings of what came before each target, with gradient.
            target_ids: Per row, the token ids that follow (nothing is appended: the text goes on).
        """
        log_likelihoods, token_counts = self.text_log_likelihoods(memories, target_ids, continues=True)
        return -log_likelihoods.sum() / token_counts.sum()

    def text_log_likelihoods(
        self, embeddings: torch.Tensor, target_ids: Sequence[Sequence[int]], continues: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per row, ``log p(text</text> | decode prompt with the embedding)`` summed over tokens, and the token count.

        Args:
            embeddings: (batch, hidden) embeddings, with gradient.
            target_ids: Per row, the text's token ids (without ``</text>``, which is appended here).
            continues: Score ``text`` as what follows the embedding, after the continue prompt, without ``</text>``.

        Returns:
            (batch,) float32 log-likelihoods and (batch,) token counts.
        """
        closing = [] if continues else [self.special_token_ids[prompts.TEXT_CLOSE]]
        right_padded = [list(ids) + closing for ids in target_ids]
        width = max(len(ids) for ids in right_padded)
        targets = torch.full((len(right_padded), width), -100, dtype=torch.long, device=embeddings.device)
        for row, ids in enumerate(right_padded):
            targets[row, : len(ids)] = torch.tensor(ids, device=embeddings.device)
        mask = targets != -100
        prompt = self.continue_prompt_embeds(embeddings) if continues else self.decode_prompt_embeds(embeddings)
        inputs = torch.cat([prompt, self.causal_lm.get_input_embeddings()(targets.clamp(min=0))], dim=1)
        attention_mask = torch.cat([mask.new_ones(prompt.shape[:2]), mask], dim=1).long()
        hidden = self.decoder(inputs_embeds=inputs, attention_mask=attention_mask).last_hidden_state
        # position i predicts token i + 1: the last prompt position predicts the first text token
        predicting = hidden[:, prompt.shape[1] - 1 : prompt.shape[1] - 1 + width][mask]
        logits = self.base_lm.get_output_embeddings()(predicting)
        token_log_likelihoods = -nn.functional.cross_entropy(logits.float(), targets[mask], reduction="none")
        rows = mask.nonzero()[:, 0]
        log_likelihoods = token_log_likelihoods.new_zeros(len(right_padded)).index_add(0, rows, token_log_likelihoods)
        return log_likelihoods, mask.sum(dim=1)
