"""Precision at inference: the compute dtype, the bfloat16 copy of the weights, and folding the LoRA adapter(s)."""

from __future__ import annotations

import contextlib
import os

import torch
from torch import nn

INFERENCE_DTYPES = ("auto", "float32", "bfloat16")
INFERENCE_DTYPE_VARIABLE = "GLAE_ST_INFERENCE_DTYPE"
"""Environment variable that decides ``inference_dtype="auto"``: ``float32`` or ``bfloat16``."""


def bf16_is_fast(device: torch.device) -> bool:
    """Whether ``device`` computes bfloat16 natively: a CUDA GPU with bf16, or a CPU with AVX512-BF16 or AMX."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


class PrecisionMixin:
    """The dtype a :class:`~glae_st.GLAEEmbedding` computes in outside training, and the weights it holds for it.

    At inference the LoRA adapter is folded into the float32 weights (one matmul per layer instead of three), and for
    bfloat16 inference a bfloat16 copy of the folded weights is swapped in; training and saving always see the
    float32 originals (:meth:`GLAEEmbedding.train` unfolds and swaps back).
    """

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
