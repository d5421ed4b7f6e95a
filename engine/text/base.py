"""The text-encoder interface shared by MiniLM (embedded default) and FLAN-T5 (paper configuration).

A :class:`TextEncoder` wraps a Hugging Face tokenizer + encoder and returns per-token states and a padding
mask. It is frozen in diffusion training (its outputs can be cached); only rows appended to its token
embedding table with :meth:`add_tokens` can be made trainable (concept tokens, textual inversion).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor, nn

from protocol.errors import ConceptError, InvalidArgument

log = logging.getLogger(__name__)


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' load reports and progress bars while loading an encoder."""
    from transformers.utils import logging as tf_logging

    level = tf_logging.get_verbosity()
    bars = tf_logging.is_progress_bar_enabled()
    tf_logging.set_verbosity_error()
    tf_logging.disable_progress_bar()
    try:
        yield
    finally:
        tf_logging.set_verbosity(level)
        if bars:
            tf_logging.enable_progress_bar()


class TextEncoder(nn.Module):
    """Subclasses set ``self.tokenizer`` and ``self.model`` (a transformers encoder) in ``__init__``."""

    hidden_size: int
    max_tokens: int
    tokenizer: Any
    model: nn.Module

    def __init__(self, max_tokens: int) -> None:
        super().__init__()
        self.max_tokens = max_tokens
        self.base_vocab_size = 0  # set by subclasses after loading: rows below this are pretrained
        self.added_tokens: list[str] = []
        self._grad_hook: Any = None

    # ---- encoding ----------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self.token_embeddings().weight.device

    def tokenize(self, prompts: list[str]) -> dict[str, Tensor]:
        if isinstance(prompts, str) or not all(isinstance(p, str) for p in prompts):
            raise InvalidArgument("prompts must be a list of strings")
        if not prompts:
            raise InvalidArgument("at least one prompt is required")
        batch = self.tokenizer(list(prompts), padding=True, truncation=True, max_length=self.max_tokens,
                               return_tensors="pt")
        return {k: v.to(self.device) for k, v in batch.items() if k in ("input_ids", "attention_mask")}

    def encode(self, prompts: list[str]) -> tuple[Tensor, Tensor]:
        """prompts (B) -> states (B, L, hidden_size) float, mask (B, L) bool (True = real token)."""
        batch = self.tokenize(prompts)
        out = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        states = out.last_hidden_state  # (B, L, H)
        mask = batch["attention_mask"].bool()
        return states * mask[..., None].to(states.dtype), mask

    def forward(self, prompts: list[str]) -> tuple[Tensor, Tensor]:
        return self.encode(prompts)

    # ---- token table -------------------------------------------------------------------------
    def token_embeddings(self) -> nn.Embedding:
        return self.model.get_input_embeddings()

    def token_ids(self, names: list[str]) -> list[int]:
        ids = self.tokenizer.convert_tokens_to_ids(list(names))
        unk = getattr(self.tokenizer, "unk_token_id", None)
        missing = [n for n, i in zip(names, ids) if i is None or (i == unk and n not in self.added_tokens)]
        if missing:
            raise ConceptError(f"tokens not in the vocabulary: {missing}")
        return list(ids)

    def add_tokens(self, names: list[str], init: Tensor | None = None) -> list[int]:
        """Append one new embedding row per name; returns their ids.

        ``init``: (len(names), hidden) initial rows; default: the mean of the pretrained rows plus noise of
        their per-dimension standard deviation (textual-inversion style statistics init).
        """
        names = list(names)
        if not names or len(set(names)) != len(names):
            raise ConceptError(f"new token names must be distinct and non-empty, got {names}")
        vocab = self.tokenizer.get_vocab()
        clash = [n for n in names if n in vocab]
        if clash:
            raise ConceptError(f"tokens already in the vocabulary: {clash}")
        table = self.token_embeddings()
        if init is not None and tuple(init.shape) != (len(names), table.embedding_dim):
            raise ConceptError(f"init must be ({len(names)}, {table.embedding_dim}), got {tuple(init.shape)}")
        added = self.tokenizer.add_tokens(names)
        if added != len(names):
            raise ConceptError(f"tokenizer accepted {added} of {len(names)} new tokens {names}")
        old_rows = table.weight.shape[0]
        self.model.resize_token_embeddings(len(self.tokenizer), mean_resizing=False)
        table = self.token_embeddings()
        ids = self.tokenizer.convert_tokens_to_ids(names)
        with torch.no_grad():
            if init is None:
                base = table.weight[: self.base_vocab_size].float()
                gen = torch.Generator().manual_seed(len(self.tokenizer))
                noise = torch.randn(len(names), table.embedding_dim, generator=gen).to(base.device)
                init = base.mean(0) + noise * base.std(0)
            table.weight[ids] = init.to(table.weight)
        self.added_tokens.extend(names)
        log.info("added %d token(s) %s at ids %s (table %d -> %d rows)", len(names), names, ids, old_rows,
                 table.weight.shape[0])
        if self._grad_hook is not None:  # table was replaced: re-attach the row mask
            self.train_only_new_tokens()
        return list(ids)

    def added_rows(self) -> tuple[list[str], Tensor]:
        """(names, (n, hidden) rows) of every token appended with :meth:`add_tokens`."""
        if not self.added_tokens:
            return [], torch.zeros(0, self.hidden_size)
        ids = self.token_ids(self.added_tokens)
        return list(self.added_tokens), self.token_embeddings().weight[ids].detach().clone()

    def train_only_new_tokens(self) -> nn.Parameter:
        """Freeze everything but the appended embedding rows; returns the embedding weight to optimise.

        Gradients of the pretrained rows are zeroed by a hook. Use an optimizer without weight decay on it
        (decoupled decay would still move frozen rows), or call :meth:`restore_pretrained_rows` after a step.
        """
        for p in self.parameters():
            p.requires_grad_(False)
        weight = self.token_embeddings().weight
        weight.requires_grad_(True)
        if self._grad_hook is not None:
            self._grad_hook.remove()
        n_base = self.base_vocab_size
        self._frozen_rows = weight[:n_base].detach().clone()

        def mask_grad(grad: Tensor) -> Tensor:
            grad = grad.clone()
            grad[:n_base] = 0
            return grad

        self._grad_hook = weight.register_hook(mask_grad)
        return weight

    @torch.no_grad()
    def restore_pretrained_rows(self) -> None:
        """Copy back the pretrained rows saved by :meth:`train_only_new_tokens`."""
        frozen = getattr(self, "_frozen_rows", None)
        if frozen is not None:
            self.token_embeddings().weight[: frozen.shape[0]] = frozen.to(self.token_embeddings().weight)

    def freeze(self) -> "TextEncoder":
        """Frozen (no grads) and in eval mode, as in diffusion training."""
        if self._grad_hook is not None:
            self._grad_hook.remove()
            self._grad_hook = None
        for p in self.parameters():
            p.requires_grad_(False)
        return self.eval()
