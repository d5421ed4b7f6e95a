"""Checkpoint directories: safetensors weights + JSON config, content hash, hub resolution, strict loading.

Layout (docs/architecture.md)::

    config.json               ModelConfig
    autoencoder.safetensors   AudioAutoencoder state
    unet.safetensors          OmniUNet1d state
    whitening.safetensors     LatentWhitening buffers (JEN-1 Algorithm 1 statistics)
    text_tokens.safetensors   optional: token rows appended to the text encoder ("rows", names in metadata)
    meta.json                 {"format": 1, "trained": bool, "training": {...}, optional "unet_dtype"}

``meta.json`` ``"unet_dtype": "float16"|"bfloat16"``: the U-Net's floating tensors are stored in that type (half
the bytes; ``stemforge model half``) and widened to float32 on load; the other files stay float32.

Content hash: sha256 over the checkpoint files present, in sorted name order, each as ``name \\n bytes``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

from protocol.errors import CheckpointNotFound, ConfigMismatch, ModelError

log = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
AUTOENCODER_FILE = "autoencoder.safetensors"
AUTOENCODER_CONFIG_FILE = "autoencoder.json"  # written by the autoencoder export (engine/train/autoencoder.py)
UNET_FILE = "unet.safetensors"
WHITENING_FILE = "whitening.safetensors"
TEXT_TOKENS_FILE = "text_tokens.safetensors"
META_FILE = "meta.json"
REQUIRED_FILES = (CONFIG_FILE, AUTOENCODER_FILE, UNET_FILE, WHITENING_FILE)
CHECKPOINT_FILES = (*REQUIRED_FILES, TEXT_TOKENS_FILE, META_FILE)
FORMAT_VERSION = 1


# ---- bytes and hashes -------------------------------------------------------------------------------
def tensors_to_bytes(state: Mapping[str, Tensor], metadata: dict[str, str] | None = None) -> bytes:
    """Serialise a state dict with safetensors (deterministic: same tensors -> same bytes)."""
    from safetensors.torch import save

    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
    return save(tensors, metadata=metadata)


STORAGE_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16}


def stored_state(state: Mapping[str, Tensor], dtype: str | None) -> dict[str, Tensor]:
    """``state`` with its floating tensors cast to the storage type ``dtype`` (None or "float32": unchanged).

    Raises ModelError for an unknown type or a tensor whose values overflow it (a float16 range of 65504)."""
    if dtype in (None, "float32"):
        return dict(state)
    if dtype not in STORAGE_DTYPES:
        raise ModelError(f"unet_dtype {dtype!r}: expected one of float32, {', '.join(STORAGE_DTYPES)}")
    target = STORAGE_DTYPES[dtype]
    out: dict[str, Tensor] = {}
    for name, t in state.items():
        if t.is_floating_point():
            cast = t.detach().to(target)
            if (torch.isfinite(t) & ~torch.isfinite(cast)).any():
                raise ModelError(f"tensor {name!r} overflows {dtype} (max |x| = {t.abs().max().item():.4g})")
            out[name] = cast
        else:
            out[name] = t
    return out


def content_hash(files: Mapping[str, bytes]) -> str:
    """sha256 hex digest over sorted file names and their bytes."""
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(name.encode() + b"\n")
        h.update(files[name])
    return h.hexdigest()


def directory_hash(directory: str | Path) -> str:
    """Content hash of the checkpoint files present in ``directory``."""
    directory = Path(directory)
    return content_hash({n: (directory / n).read_bytes() for n in CHECKPOINT_FILES if (directory / n).is_file()})


def write_files(directory: str | Path, files: Mapping[str, bytes]) -> str:
    """Write each file atomically (temp + rename); stale checkpoint files not in ``files`` are removed."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        tmp = directory / f".{name}.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, directory / name)
    for name in CHECKPOINT_FILES:
        if name not in files and (directory / name).is_file():
            (directory / name).unlink()
    return content_hash(files)


# ---- reading ----------------------------------------------------------------------------------------
def read_tensors(path: str | Path) -> tuple[dict[str, Tensor], dict[str, str]]:
    """(tensors, metadata) of one safetensors file; CheckpointNotFound names a missing file."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointNotFound(f"checkpoint file missing: {path}", file=str(path))
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = dict(fh.metadata() or {})
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    except Exception as exc:  # safetensors raises SafetensorError / OSError on corrupt files
        raise ModelError(f"cannot read checkpoint file {path}: {exc}", file=str(path)) from None
    return tensors, meta


def read_json(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointNotFound(f"checkpoint file missing: {path}", file=str(path))
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read {path}: {exc}", file=str(path)) from None


def load_state_strict(module: nn.Module, state: Mapping[str, Tensor], what: str) -> None:
    """Load ``state`` into ``module``; any missing, unexpected or mis-shaped tensor -> ConfigMismatch naming it."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing:
        raise ConfigMismatch(f"{what}: tensor {missing[0]!r} missing from the checkpoint "
                             f"({len(missing)} missing); the config does not match these weights",
                             tensor=missing[0], component=what)
    if unexpected:
        raise ConfigMismatch(f"{what}: unexpected tensor {unexpected[0]!r} in the checkpoint "
                             f"({len(unexpected)} unexpected); the config does not match these weights",
                             tensor=unexpected[0], component=what)
    for name, ref in expected.items():
        got = state[name]
        if tuple(got.shape) != tuple(ref.shape):
            raise ConfigMismatch(f"{what}: tensor {name!r} has shape {tuple(got.shape)} in the checkpoint, "
                                 f"the config builds {tuple(ref.shape)}", tensor=name, component=what)
    module.load_state_dict(dict(state), strict=True)


# ---- locations ----------------------------------------------------------------------------------------
def _looks_like_path(name: str) -> bool:
    """Hub ids are ``owner/name`` or ``name``; anything rooted, dotted or deeper is a filesystem path."""
    return name.startswith(("/", ".", "~")) or name.count("/") > 1 or "\\" in name or not name


def resolve_checkpoint(path_or_hub_id: str | Path, local_files_only: bool | None = None) -> Path:
    """A local checkpoint folder, or a Hugging Face hub id fetched with ``snapshot_download``.

    Offline (HF_HUB_OFFLINE=1 or no network) a hub id not already in the cache -> CheckpointNotFound naming it.
    """
    name = str(path_or_hub_id)
    local = Path(name).expanduser()
    if local.is_dir():
        return local
    if _looks_like_path(name):
        raise CheckpointNotFound(f"checkpoint folder not found: {local}", file=str(local))
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id=name, local_files_only=bool(local_files_only)))
    except Exception as exc:  # hub raises many kinds (offline, 404, auth, connection, invalid id)
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointNotFound(f"checkpoint {name!r} is neither a local folder nor fetchable from the "
                                 f"Hugging Face hub here ({type(exc).__name__}: {reason})", file=name) from None
