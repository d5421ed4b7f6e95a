"""StemforgeModel: the bundle of autoencoder, latent whitening, omnidirectional U-Net and text encoder.

    model = StemforgeModel.from_config("tiny", seed=0)           # random init, trained=False
    model = StemforgeModel.from_pretrained("path/or/hub-id")      # a checkpoint directory (engine/checkpoint.py)
    model = StemforgeModel.default()                              # engine/weights/default/, else random tiny
    digest = model.save_pretrained("out/")                        # content hash (== model.hash)
    z = model.encode_stems(audio)        # (B, k, 2, N) -> whitened (B, k, D, ceil(N / 320))
    audio = model.decode_stems(z, N)     # (B, k, D, F) -> (B, k, 2, N)

The text encoder is loaded on first use of ``model.text_encoder`` (MiniLM loads in a few seconds).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from engine import checkpoint as ckpt
from engine.config import AutoencoderConfig, ModelConfig, get_config
from engine.models.unet import OmniUNet1d
from engine.models.whitening import LatentWhitening
from protocol.errors import CheckpointNotFound, ConfigMismatch, InvalidAudio

log = logging.getLogger(__name__)

DEFAULT_WEIGHTS = Path(__file__).resolve().parent / "weights" / "default"


def _autoencoder_cls() -> type[nn.Module]:
    from engine.models.autoencoder import AudioAutoencoder  # lazy: owned by the autoencoder work

    return AudioAutoencoder


def _resolve_config(name_or_cfg: str | ModelConfig) -> ModelConfig:
    if isinstance(name_or_cfg, ModelConfig):
        name_or_cfg.validate()
        return name_or_cfg
    if isinstance(name_or_cfg, (str, Path)) and Path(name_or_cfg).suffix == ".json":
        return ModelConfig.load(name_or_cfg)
    return get_config(str(name_or_cfg))


def _count(module: nn.Module | None) -> int | None:
    return None if module is None else sum(p.numel() for p in module.parameters())


class StemforgeModel:
    """config, autoencoder, whitening, unet, text_encoder, trained, hash (see docs/architecture.md)."""

    def __init__(self, config: ModelConfig, autoencoder: nn.Module, whitening: LatentWhitening, unet: OmniUNet1d,
                 text_encoder: nn.Module | None = None, *, trained: bool = False,
                 meta: dict[str, Any] | None = None, content_hash: str | None = None,
                 text_tokens: tuple[list[str], Tensor] | None = None) -> None:
        self.config = config
        self.autoencoder = autoencoder
        self.whitening = whitening
        self.unet = unet
        self._text_encoder = text_encoder
        self._pending_tokens = text_tokens  # rows from text_tokens.safetensors, applied when the encoder loads
        self.trained = trained
        self.meta: dict[str, Any] = dict(meta or {})
        self._hash = content_hash

    # ---- construction ---------------------------------------------------------------------------
    @classmethod
    def from_config(cls, name_or_cfg: str | ModelConfig = "tiny", seed: int = 0, *, device: str | torch.device = "cpu",
                    autoencoder_from: str | Path | None = None) -> "StemforgeModel":
        """Randomly initialised (deterministic for ``seed``; the global RNG is left untouched).

        ``device="meta"`` builds shapes only (parameter counts of the paper-size model).
        ``autoencoder_from``: a folder exported by the autoencoder training (``autoencoder.safetensors`` +
        ``autoencoder.json``/``config.json``, optionally ``whitening.safetensors``); its weights replace the
        random autoencoder and its AutoencoderConfig replaces the config's.
        """
        cfg = _resolve_config(name_or_cfg)
        ae_state = wh_state = None
        if autoencoder_from is not None:
            ae_cfg, ae_state, wh_state = load_autoencoder_export(autoencoder_from)
            if ae_cfg != cfg.autoencoder:
                log.info("using the exported autoencoder configuration from %s", autoencoder_from)
                cfg = dataclasses.replace(cfg, autoencoder=ae_cfg)
                cfg.validate()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            with torch.device(device):
                autoencoder = _autoencoder_cls()(cfg.autoencoder)
                whitening = LatentWhitening(cfg.autoencoder.latent_dim, cfg.whitened_dim)
                unet = OmniUNet1d(cfg)
        model = cls(cfg, autoencoder, whitening, unet, trained=False, meta={"seed": seed})
        if ae_state is not None:
            ckpt.load_state_strict(model.autoencoder, ae_state, ckpt.AUTOENCODER_FILE)
        if wh_state is not None:
            ckpt.load_state_strict(model.whitening, wh_state, ckpt.WHITENING_FILE)
        return model.eval()

    @classmethod
    def from_pretrained(cls, path_or_hub_id: str | Path, *, device: str | torch.device = "cpu",
                        local_files_only: bool | None = None) -> "StemforgeModel":
        """Load a checkpoint directory (or hub id, via huggingface_hub.snapshot_download)."""
        directory = ckpt.resolve_checkpoint(path_or_hub_id, local_files_only=local_files_only)
        for name in ckpt.REQUIRED_FILES:
            if not (directory / name).is_file():
                raise CheckpointNotFound(f"checkpoint {directory} lacks {name}", file=str(directory / name))
        cfg = ModelConfig.from_dict(ckpt.read_json(directory / ckpt.CONFIG_FILE))
        meta = ckpt.read_json(directory / ckpt.META_FILE) if (directory / ckpt.META_FILE).is_file() else {}
        with torch.random.fork_rng(devices=[]):  # built on CPU (non-persistent buffers such as STFT windows
            torch.manual_seed(0)                  # must be real); every persistent tensor is overwritten below
            autoencoder = _autoencoder_cls()(cfg.autoencoder)
            unet = OmniUNet1d(cfg)
        whitening = LatentWhitening(cfg.autoencoder.latent_dim, cfg.whitened_dim)
        for module, name in ((autoencoder, ckpt.AUTOENCODER_FILE), (unet, ckpt.UNET_FILE),
                             (whitening, ckpt.WHITENING_FILE)):
            state, _ = ckpt.read_tensors(directory / name)
            ckpt.load_state_strict(module, state, name)
        tokens = None
        if (directory / ckpt.TEXT_TOKENS_FILE).is_file():
            state, md = ckpt.read_tensors(directory / ckpt.TEXT_TOKENS_FILE)
            names = json.loads(md.get("names", "[]"))
            rows = state.get("rows", torch.zeros(0, cfg.text.hidden_size))
            if rows.shape != (len(names), cfg.text.hidden_size):
                raise ConfigMismatch(f"{ckpt.TEXT_TOKENS_FILE}: tensor 'rows' has shape {tuple(rows.shape)}, expected "
                                     f"({len(names)}, {cfg.text.hidden_size})", tensor="rows")
            tokens = (names, rows)
        model = cls(cfg, autoencoder, whitening, unet, trained=bool(meta.get("trained", False)), meta=meta,
                    content_hash=ckpt.directory_hash(directory), text_tokens=tokens)
        log.info("loaded model %s from %s (hash %s, trained=%s)", cfg.name, directory, model.hash[:12], model.trained)
        return model.to(device).eval()

    @classmethod
    def default(cls, *, device: str | torch.device = "cpu") -> "StemforgeModel":
        """The embedded trained default (engine/weights/default/), else a random tiny model (seed 0)."""
        if (DEFAULT_WEIGHTS / ckpt.CONFIG_FILE).is_file():
            return cls.from_pretrained(DEFAULT_WEIGHTS, device=device)
        log.warning("!!! NO TRAINED WEIGHTS: %s is empty; using a RANDOMLY INITIALISED tiny model (seed 0, "
                    "trained=False). Its output is noise, not music. !!!", DEFAULT_WEIGHTS)
        return cls.from_config("tiny", seed=0, device=device)

    @classmethod
    def load(cls, spec: str | Path | None = None, *, device: str | torch.device = "cpu") -> "StemforgeModel":
        """CLI helper for ``--model PATH|CONFIG``: None -> default(); a config name -> random init;
        anything else -> a checkpoint folder or hub id."""
        if spec is None or str(spec) == "":
            return cls.default(device=device)
        from engine.config import CONFIGS

        if str(spec) in CONFIGS:
            log.warning("model %r: randomly initialised (seed 0, trained=False)", str(spec))
            return cls.from_config(str(spec), seed=0, device=device)
        return cls.from_pretrained(spec, device=device)

    # ---- text encoder -----------------------------------------------------------------------------
    @property
    def text_encoder(self) -> nn.Module:
        if self._text_encoder is None:
            from engine.text import build_text_encoder

            enc = build_text_encoder(self.config.text).to(self.device)
            if self._pending_tokens is not None and self._pending_tokens[0]:
                names, rows = self._pending_tokens
                enc.add_tokens(names, init=rows)
                enc.freeze()
            self._pending_tokens = None
            self._text_encoder = enc
        return self._text_encoder

    @text_encoder.setter
    def text_encoder(self, encoder: nn.Module) -> None:
        self._text_encoder = encoder

    @property
    def text_encoder_loaded(self) -> bool:
        return self._text_encoder is not None

    @torch.no_grad()
    def encode_text(self, prompts: list[str]) -> tuple[Tensor, Tensor]:
        """prompts -> (B, L, H) states on the U-Net's device/dtype, (B, L) bool mask."""
        states, mask = self.text_encoder.encode(prompts)
        return states.to(self.device, self.dtype), mask.to(self.device)

    # ---- audio <-> whitened latents ---------------------------------------------------------------
    def encode_stems(self, audio: Tensor) -> Tensor:
        """(B, k, 2, N) audio -> whitened latents (B, k, whitened_dim, ceil(N / 320))."""
        k = self.config.num_stems
        if audio.ndim != 4 or audio.shape[1] != k or audio.shape[2] != 2:
            raise InvalidAudio(f"stems must be (B, {k}, 2, N), got {tuple(audio.shape)}")
        b, _, _, n = audio.shape
        ae_param = next(self.autoencoder.parameters())
        z = self.autoencoder.encode(audio.reshape(b * k, 2, n).to(ae_param.device, ae_param.dtype))  # (B*k, d, F)
        zw = self.whitening.whiten(z)  # (B*k, D, F)
        return zw.reshape(b, k, zw.shape[1], zw.shape[2])

    def decode_stems(self, z: Tensor, length: int) -> Tensor:
        """(B, k, whitened_dim, F) -> audio (B, k, 2, length)."""
        k, d = self.config.num_stems, self.config.whitened_dim
        if z.ndim != 4 or z.shape[1] != k or z.shape[2] != d:
            raise ConfigMismatch(f"stem latents must be (B, {k}, {d}, F), got {tuple(z.shape)}")
        b, _, _, f = z.shape
        ae_param = next(self.autoencoder.parameters())
        zl = self.whitening.unwhiten(z.reshape(b * k, d, f).to(ae_param.device, ae_param.dtype))  # (B*k, d_lat, F)
        audio = self.autoencoder.decode(zl, length)  # (B*k, 2, length)
        return audio.reshape(b, k, 2, length)

    # ---- device / mode ----------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.unet.parameters()).dtype

    def to(self, device: str | torch.device | None = None, dtype: torch.dtype | None = None,
           autoencoder_dtype: torch.dtype | None = None) -> "StemforgeModel":
        """Move every part to ``device``. ``dtype`` casts the U-Net (e.g. bf16 on a GPU host); the STFT autoencoder
        stays float32 unless ``autoencoder_dtype`` says otherwise; whitening statistics stay float64."""
        self.unet.to(device=device, dtype=dtype)
        self.autoencoder.to(device=device, dtype=autoencoder_dtype)
        self.whitening.to(device=device)
        if self._text_encoder is not None:
            self._text_encoder.to(device=device)
        return self

    def eval(self) -> "StemforgeModel":
        return self.train(False)

    def train(self, mode: bool = True) -> "StemforgeModel":
        self.autoencoder.train(mode)
        self.unet.train(mode)
        self.whitening.eval()
        if self._text_encoder is not None:
            self._text_encoder.eval()  # frozen in diffusion training
        return self

    def modules(self) -> dict[str, nn.Module]:
        out = {"autoencoder": self.autoencoder, "whitening": self.whitening, "unet": self.unet}
        if self._text_encoder is not None:
            out["text_encoder"] = self._text_encoder
        return out

    def parameter_counts(self, include_text: bool = True) -> dict[str, Any]:
        from engine.text import text_encoder_parameter_count

        text = _count(self._text_encoder) if self._text_encoder is not None else None
        text_note = None
        if text is None and include_text:
            try:
                text = text_encoder_parameter_count(self.config.text)
            except Exception as exc:  # unavailable offline: report why instead of failing
                text_note = getattr(exc, "message", str(exc))
        ae, unet = _count(self.autoencoder), _count(self.unet)
        out: dict[str, Any] = {
            "autoencoder": ae,
            "unet": unet,
            "text_encoder": text,
            "whitening": {"latent_dim": self.whitening.dim, "whitened_dim": self.whitening.k,
                          "finalized": None if self.whitening.finalized.is_meta else self.whitening.is_finalized},
            "total": ae + unet + (text or 0),
        }
        if text_note:
            out["text_encoder_note"] = text_note
        return out

    # ---- checkpoints ------------------------------------------------------------------------------
    def checkpoint_files(self, training: dict[str, Any] | None = None, trained: bool | None = None) -> dict[str, bytes]:
        """The bytes of every checkpoint file (what save_pretrained writes and hashes)."""
        meta = dict(self.meta)
        meta.update({"format": ckpt.FORMAT_VERSION, "trained": self.trained if trained is None else bool(trained)})
        if training is not None:
            meta["training"] = training
        files = {
            ckpt.CONFIG_FILE: self.config.to_json().encode(),
            ckpt.AUTOENCODER_FILE: ckpt.tensors_to_bytes(self.autoencoder.state_dict()),
            ckpt.UNET_FILE: ckpt.tensors_to_bytes(ckpt.stored_state(self.unet.state_dict(), meta.get("unet_dtype"))),
            ckpt.WHITENING_FILE: ckpt.tensors_to_bytes(self.whitening.state_dict()),
            ckpt.META_FILE: json.dumps(meta, indent=2, sort_keys=True).encode(),
        }
        names, rows = self._pending_tokens or ([], None)
        if self._text_encoder is not None and hasattr(self._text_encoder, "added_rows"):
            names, rows = self._text_encoder.added_rows()
        if names:
            files[ckpt.TEXT_TOKENS_FILE] = ckpt.tensors_to_bytes({"rows": rows}, {"names": json.dumps(names)})
        return files

    def store_unet_as(self, dtype: str) -> None:
        """Store the U-Net in ``dtype`` (float16, bfloat16 or float32) from now on. The weights in memory are
        rounded through that type too, so this model computes exactly what a reload of its checkpoint computes."""
        with torch.no_grad():
            rounded = ckpt.stored_state(self.unet.state_dict(), dtype)
            self.unet.load_state_dict(rounded, strict=True)
        self.meta = {**self.meta, "unet_dtype": dtype}
        self._hash = None

    def save_pretrained(self, directory: str | Path, *, training: dict[str, Any] | None = None,
                        trained: bool | None = None) -> str:
        """Write the checkpoint directory; returns (and stores as ``.hash``) its content hash."""
        files = self.checkpoint_files(training=training, trained=trained)
        digest = ckpt.write_files(directory, files)
        self.meta = json.loads(files[ckpt.META_FILE])
        self.trained = bool(self.meta["trained"])
        self._hash = digest
        log.info("saved model %s to %s (hash %s)", self.config.name, directory, digest[:12])
        return digest

    @property
    def hash(self) -> str:
        """Content hash of the checkpoint this model would write (cached; refresh after changing weights)."""
        if self._hash is None:
            self._hash = ckpt.content_hash(self.checkpoint_files())
        return self._hash

    def refresh_hash(self) -> str:
        self._hash = None
        return self.hash

    def load_autoencoder(self, export_dir: str | Path, with_whitening: bool = True) -> None:
        """Replace the autoencoder (and whitening, when the export has it) by an exported one of the same config."""
        ae_cfg, ae_state, wh_state = load_autoencoder_export(export_dir)
        if ae_cfg != self.config.autoencoder:
            diff = [f.name for f in dataclasses.fields(ae_cfg)
                    if getattr(ae_cfg, f.name) != getattr(self.config.autoencoder, f.name)]
            raise ConfigMismatch(f"exported autoencoder in {export_dir} differs from this model's config in {diff}")
        ckpt.load_state_strict(self.autoencoder, ae_state, ckpt.AUTOENCODER_FILE)
        if with_whitening and wh_state is not None:
            ckpt.load_state_strict(self.whitening, wh_state, ckpt.WHITENING_FILE)
        self._hash = None

    def replace_decoder(self, export_dir: str | Path) -> dict[str, Any]:
        """Take the decoder (and decoder-side config such as ``tonal_head``) of an exported autoencoder whose
        encoder is this model's own, bit for bit: the latent space, the whitening and the U-Net stay valid.

        Raises ConfigMismatch when the export's encoder or its encoder-side config differs (a U-Net would then
        see another latent space: retrain the diffusion model instead). Returns a summary for ``meta.json``.
        """
        from engine.models.autoencoder import ENCODER_PREFIXES, AudioAutoencoder

        ae_cfg, ae_state, _ = load_autoencoder_export(export_dir)
        decoder_fields = {"decoder_depth", "tonal_head", "latent_mask_prob"}
        diff = [f.name for f in dataclasses.fields(ae_cfg) if f.name not in decoder_fields
                and getattr(ae_cfg, f.name) != getattr(self.config.autoencoder, f.name)]
        if diff:
            raise ConfigMismatch(f"exported autoencoder in {export_dir} differs in encoder-side config {diff}")
        own = self.autoencoder.state_dict()
        encoder = [k for k in own if k.startswith(ENCODER_PREFIXES)]
        changed = [k for k in encoder if k not in ae_state or not torch.equal(own[k].cpu(), ae_state[k].cpu())]
        if changed:
            raise ConfigMismatch(f"the encoder in {export_dir} is not this model's ({len(changed)} tensors differ, "
                                 f"e.g. {changed[0]}): its latents would not be the U-Net's; retrain diffusion")
        param = next(self.autoencoder.parameters())
        fresh = AudioAutoencoder(ae_cfg)
        ckpt.load_state_strict(fresh, ae_state, ckpt.AUTOENCODER_FILE)
        self.autoencoder = fresh.to(device=param.device, dtype=param.dtype).train(self.autoencoder.training)
        self.config = dataclasses.replace(self.config, autoencoder=ae_cfg)
        self._hash = None
        return {"source": str(export_dir), "tonal_head": ae_cfg.tonal_head,
                "parameters": sum(p.numel() for p in fresh.parameters())}

    def __repr__(self) -> str:
        return f"StemforgeModel({self.config.name!r}, trained={self.trained}, device={self.device})"


def load_autoencoder_export(directory: str | Path) -> tuple[AutoencoderConfig, dict[str, Tensor], dict | None]:
    """(AutoencoderConfig, autoencoder state, whitening state or None) of an autoencoder export folder."""
    directory = Path(directory)
    if (directory / ckpt.AUTOENCODER_CONFIG_FILE).is_file():
        data = ckpt.read_json(directory / ckpt.AUTOENCODER_CONFIG_FILE)
    elif (directory / ckpt.CONFIG_FILE).is_file():
        data = ckpt.read_json(directory / ckpt.CONFIG_FILE).get("autoencoder", {})
    else:
        raise CheckpointNotFound(f"autoencoder export {directory} has neither {ckpt.AUTOENCODER_CONFIG_FILE} "
                                      f"nor {ckpt.CONFIG_FILE}", file=str(directory / ckpt.AUTOENCODER_CONFIG_FILE))
    try:
        ae_cfg = AutoencoderConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})
    except TypeError as exc:
        raise ConfigMismatch(f"{directory}: invalid autoencoder configuration: {exc}") from None
    ae_state, _ = ckpt.read_tensors(directory / ckpt.AUTOENCODER_FILE)
    wh_state = None
    if (directory / ckpt.WHITENING_FILE).is_file():
        wh_state, _ = ckpt.read_tensors(directory / ckpt.WHITENING_FILE)
    return ae_cfg, ae_state, wh_state
