"""The LoRA adapters of a GLAE model: the main adapter, the recurrence adapter of the long-text prompts, and
switching between them (folded at inference, restored exactly)."""

from __future__ import annotations

from typing import Any

import torch

from glae_st.util import peft_deprecations_silenced

MAIN_ADAPTER = "default"
"""The peft adapter of encoding and decoding (and of the Fig. 3 recurrence and the continue prompt, unless the model
has a :data:`RECURRENCE_ADAPTER`)."""
RECURRENCE_ADAPTER = "recurrence"
"""The optional peft adapter of the Fig. 3 recurrence and the continue prompt
(:meth:`GLAEEmbedding.add_recurrence_adapter`); peft saves it in ``adapter/recurrence``."""
EXTRA_ADAPTERS = (RECURRENCE_ADAPTER,)
"""The adapters a model may carry beside :data:`MAIN_ADAPTER`, each a copy of it at first that trains alone."""


class AdaptersMixin:
    """The LoRA adapters of a :class:`~glae_st.GLAEEmbedding`: :meth:`add_lora` wraps the backbone with the main
    adapter; :meth:`add_recurrence_adapter` gives the long-text prompts one of their own; :meth:`use_adapter` makes
    one of them active (encoding and decoding pick theirs themselves)."""

    def add_lora(self, lora_config: Any | None = None, train_special_tokens: bool = True) -> None:
        """Wrap the backbone with a peft LoRA adapter (and train the special-token rows with it).

        Args:
            lora_config: A ``peft.LoraConfig``; by default rank 32 on all linear layers of the decoder.
            train_special_tokens: Also train the rows of ``<embedding>``, ``</embedding>``, ``<text>``, ``</text>``
                (peft ``trainable_token_indices``; the LM head follows when it is tied).
        """
        from peft import LoraConfig, get_peft_model

        lora_config = lora_config or LoraConfig(r=32, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear")
        if train_special_tokens and lora_config.trainable_token_indices is None:
            lora_config.trainable_token_indices = sorted(self.special_token_ids.values())
        with peft_deprecations_silenced():
            self.causal_lm = get_peft_model(self.causal_lm, lora_config)
        self._stored_prefix = None
        self._weight_copies = {}
        self._unfolded_weights = None

    @property
    def has_recurrence_adapter(self) -> bool:
        """Whether the Fig. 3 recurrence and the continue prompt have a LoRA adapter of their own
        (:data:`RECURRENCE_ADAPTER`)."""
        return RECURRENCE_ADAPTER in getattr(self.causal_lm, "peft_config", {})

    def add_recurrence_adapter(self, rank: int | None = None) -> None:
        """Give the paper's long-text prompts, the Fig. 3 recurrence (:meth:`iterate`) and the Fig. 2 continue prompt
        (:meth:`continue_prompt_embeds`), a LoRA adapter of their own, starting as an exact copy of the main adapter.

        The first chunk of every text is still embedded by the main adapter and decoding keeps its adapter, so
        training only this one (``training/configs/smollm2-recurrence.yaml``) teaches the model to carry later chunks
        in its vector while every text of one chunk keeps its embedding and its decode, bit for bit: the long-text
        skills of the GLAE paper (Zhang et al., 2024, section 5) without the short-text cost of training them into
        the shared weights. A ``rank`` above the main adapter's adds capacity: the extra rank starts with zero ``B``
        rows, so the copy is still exact. Only the new adapter trains afterwards.

        Example::

            model = glae_st.load_model(glae_st.DEFAULT_MODEL)
            model[0].add_recurrence_adapter(rank=64)
            model[0].long_text = "iterative"   # train with long_documents / continuations rows

        Raises:
            ValueError: The model has no main LoRA adapter, already has a recurrence adapter, or ``rank`` is
                smaller than the main adapter's.
        """
        self._add_adapter_copy(RECURRENCE_ADAPTER, rank)

    def _add_adapter_copy(self, adapter: str, rank: int | None) -> None:
        """Add ``adapter`` as an exact copy of the main adapter (extra rank with zero ``B``); only it trains, the main
        adapter, the special-token rows and the bridge are frozen."""
        from peft import LoraConfig

        if not hasattr(self.causal_lm, "peft_config") or adapter in self.causal_lm.peft_config:
            raise ValueError(
                f"add_{adapter}_adapter needs a model with a main LoRA adapter (add_lora, or a trained GLAE model) "
                f"and no {adapter} adapter yet."
            )
        main = self.causal_lm.peft_config[MAIN_ADAPTER]
        rank = main.r if rank is None else rank
        if not isinstance(rank, int) or rank < main.r:
            raise ValueError(f"rank must be an integer >= the main adapter's rank {main.r}, got {rank!r}.")
        self.use_adapter(MAIN_ADAPTER)
        self.train()  # unfold the main adapter: the copy is made of its factors
        config = LoraConfig(
            r=rank,
            lora_alpha=main.lora_alpha * rank / main.r,  # the same scale, so copied factors give the same update
            lora_dropout=main.lora_dropout,
            target_modules=main.target_modules,
            trainable_token_indices=main.trainable_token_indices,
        )
        with peft_deprecations_silenced():
            self.causal_lm.add_adapter(adapter, config)
        parameters = dict(self.causal_lm.named_parameters())
        with torch.no_grad():
            for name, parameter in parameters.items():
                parameter.requires_grad_(f".{adapter}" in name)
                if not parameter.requires_grad:
                    continue
                source = parameters[name.replace(f".{adapter}", f".{MAIN_ADAPTER}")]
                if "lora_A" in name:
                    parameter[: main.r] = source
                elif "lora_B" in name:
                    parameter.zero_()
                    parameter[:, : main.r] = source
                else:  # the special-token rows' deltas
                    parameter.copy_(source)
        self.bridge.requires_grad_(False)

    def use_adapter(self, name: str) -> None:
        """Make ``name`` (:data:`MAIN_ADAPTER` or one of :data:`EXTRA_ADAPTERS`) the active adapter, folded at
        inference in the dtype the weights were held in; a model without that adapter uses its main one, and a
        model with one adapter is left as it is. Which parameters train is left as it was (peft's ``set_adapter``
        would mark the active adapter trainable)."""
        adapters = getattr(self.causal_lm, "peft_config", {})
        name = name if name in adapters else MAIN_ADAPTER
        if len(adapters) < 2 or self.causal_lm.active_adapter == name:
            return
        held = self._held_dtype
        self._hold_weights_in(torch.float32)
        self._weight_copies = {}  # copies of the other adapter's folded weights
        self._fold_lora(False)
        trainable = {parameter: parameter.requires_grad for parameter in self.causal_lm.parameters()}
        self.causal_lm.set_adapter(name)
        for parameter, flag in trainable.items():
            parameter.requires_grad_(flag)
        self._fold_lora(not self.training)
        self._hold_weights_in(held)
