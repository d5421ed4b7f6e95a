"""FLAN-T5 encoder states through transformers (the papers' text encoder), from a local path or a hub id.

Offline-tolerant: a hub id is first looked up in the local Hugging Face cache; when it is neither there nor
downloadable, :class:`CheckpointNotFound` names the id.
"""

from __future__ import annotations

import logging
from pathlib import Path

from engine.text.base import TextEncoder, quiet_transformers
from protocol.errors import CheckpointNotFound

log = logging.getLogger(__name__)


def _looks_like_path(name: str) -> bool:
    return name.startswith(("/", "./", "../", "~")) or Path(name).expanduser().exists()


class T5TextEncoder(TextEncoder):
    """Last hidden states of a T5 encoder: prompts -> (B, L, d_model), mask (B, L)."""

    def __init__(self, name_or_path: str | Path = "google/flan-t5-large", max_tokens: int = 128,
                 local_files_only: bool | None = None) -> None:
        super().__init__(max_tokens)
        from transformers import AutoTokenizer, T5EncoderModel

        name = str(name_or_path)
        if not name:
            raise CheckpointNotFound("T5 text encoder needs a local path or a hub id", file="")
        if _looks_like_path(name):
            path = Path(name).expanduser()
            if not (path / "config.json").is_file():
                raise CheckpointNotFound(f"T5 text encoder not found: {path / 'config.json'} does not exist",
                                         file=str(path / "config.json"))
            name, local_files_only = str(path), True
        try:
            with quiet_transformers():
                self.tokenizer = AutoTokenizer.from_pretrained(name, local_files_only=bool(local_files_only))
                self.model = T5EncoderModel.from_pretrained(name, local_files_only=bool(local_files_only))
        except (OSError, ValueError) as exc:
            raise CheckpointNotFound(
                f"cannot load T5 text encoder {name!r} (not a local folder, not in the Hugging Face cache and not "
                f"downloadable here): {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", file=name
            ) from None
        self.hidden_size = int(self.model.config.d_model)
        self.base_vocab_size = int(self.token_embeddings().weight.shape[0])
        self.name_or_path = name
        self.freeze()
        log.debug("loaded T5 text encoder %s (d_model %d)", name, self.hidden_size)
