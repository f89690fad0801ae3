"""The learned corrector: the GLAE model rewrites a decoded text so that it encodes closer to the target vector.

vec2text (Morris et al., 2023) corrects a hypothesis with a second model that reads the target embedding, the
hypothesis's embedding, their difference and the hypothesis's tokens. A GLAE model can be its own corrector: the same
LM reads the three vectors through the same bridge, in the prompt :data:`glae_st.prompts.CORRECT`, with a LoRA adapter
of its own (:meth:`GLAEEmbedding.add_corrector_adapter`), so every embedding and first decode stays as it was.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from glae_st import prompts
from glae_st.adapters import CORRECTOR_ADAPTER
from glae_st.module import GLAEEmbedding
from glae_st.util import padded_positions


def correction_prompt_embeds(
    module: GLAEEmbedding,
    targets: torch.Tensor,
    hypothesis_embeddings: torch.Tensor,
    hypothesis_ids: Sequence[Sequence[int]],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded input embeddings and attention mask of :data:`~glae_st.prompts.CORRECT` per row: the target
    vector, the hypothesis's embedding and their difference in its three ``<embedding>`` slots (through the bridge),
    and the hypothesis's tokens in its ``<text>``. The corrector adapter becomes active (generation goes on with it).

    Args:
        targets: (batch, hidden) the embeddings to decode.
        hypothesis_embeddings: (batch, hidden) the embeddings of the current hypotheses.
        hypothesis_ids: Per row, the token ids of the current hypothesis.
    """
    module.use_adapter(CORRECTOR_ADAPTER)
    embed_tokens = module.causal_lm.get_input_embeddings()
    device = targets.device
    pieces = [
        embed_tokens(torch.tensor(module.tokenizer(piece, add_special_tokens=False)["input_ids"], device=device))
        for piece in prompts.CORRECT.pieces
    ]
    vectors = torch.stack([targets, hypothesis_embeddings, targets - hypothesis_embeddings], dim=1)
    slots = module.bridge(vectors.to(pieces[0].dtype))
    rows = []
    for row, ids in enumerate(hypothesis_ids):
        text = embed_tokens(torch.tensor(list(ids), dtype=torch.long, device=device))
        vector_slots = slots[row].split(1)
        rows.append(torch.cat([*(part for pair in zip(pieces, vector_slots) for part in pair), pieces[3], text, pieces[4]]))
    width = max(len(row) for row in rows)
    inputs = rows[0].new_zeros(len(rows), width, rows[0].shape[-1])
    attention_mask = torch.zeros(len(rows), width, dtype=torch.long, device=device)
    for index, row in enumerate(rows):
        inputs[index, width - len(row) :] = row
        attention_mask[index, width - len(row) :] = 1
    return inputs, attention_mask


def correction_nll(
    module: GLAEEmbedding,
    targets: torch.Tensor,
    hypothesis_embeddings: torch.Tensor,
    hypothesis_ids: Sequence[Sequence[int]],
    target_ids: Sequence[Sequence[int]],
) -> torch.Tensor:
    """Mean NLL per token of ``text</text>`` after the correction prompt: what :class:`~glae_st.losses.CorrectionLoss`
    minimises. Positions skip the prompt's left padding, as ``generate`` numbers them."""
    prompt, prompt_mask = correction_prompt_embeds(module, targets, hypothesis_embeddings, hypothesis_ids)
    closing = module.special_token_ids[prompts.TEXT_CLOSE]
    answers = [list(ids) + [closing] for ids in target_ids]
    width = max(len(ids) for ids in answers)
    labels = torch.full((len(answers), width), -100, dtype=torch.long, device=targets.device)
    for row, ids in enumerate(answers):
        labels[row, : len(ids)] = torch.tensor(ids, device=targets.device)
    answer_mask = labels != -100
    inputs = torch.cat([prompt, module.causal_lm.get_input_embeddings()(labels.clamp(min=0))], dim=1)
    attention_mask = torch.cat([prompt_mask, answer_mask.long()], dim=1)
    position_ids, _ = padded_positions(attention_mask)
    hidden = module.decoder(
        inputs_embeds=inputs, attention_mask=attention_mask, position_ids=position_ids
    ).last_hidden_state
    predicting = hidden[:, prompt.shape[1] - 1 : prompt.shape[1] - 1 + width][answer_mask]
    logits = module.base_lm.get_output_embeddings()(predicting)
    return nn.functional.cross_entropy(logits.float(), labels[answer_mask])
