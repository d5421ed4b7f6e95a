"""Diffusion training of the omnidirectional U-Net on frozen, whitened autoencoder latents.

``stemforge train diffusion --data DIR --ae AE [--config tiny] [--steps N] [--batch B] [--device D] [--out RUN]
[--resume] [--export DIR]``:

1. The base model: the U-Net is initialised from ``--config`` (seeded); the autoencoder and the whitening
   statistics come from ``--ae``: an autoencoder run folder (``checkpoint.pt``, EMA weights, plus
   ``whitening.safetensors`` from ``stemforge train whitening``), an autoencoder export folder, or a full model
   checkpoint directory (its autoencoder and whitening only). The whitening must be finalised.
2. The corpus (a studio render folder with ``metadata.jsonl`` or a stem-folder dataset) is encoded once to
   whitened latents ``(k, D, F)`` per item with the frozen autoencoder and cached in ``RUN/latents-<key>.safetensors``
   (float16; the key hashes the autoencoder, the whitening and the data files). Text-encoder outputs are cached
   per prompt string (LRU, :class:`TextCache`).
3. Each step draws ``B`` random items and aligned random crops of ``segment_seconds`` (or the shortest item), builds
   the batch with :mod:`engine.train.tasks` (JEN-1 multi-task mix + Composer curriculum), runs one U-Net forward per
   mode (bidirectional / unidirectional) and minimises the masked MSE to the target (epsilon or v) with AdamW
   (betas 0.9/0.95, weight decay 0.1, JEN-1 sec. 5), gradient clipping at 1.0, a linear warm-up over ``warmup`` steps then linear decay to 0
   at ``steps``, and an EMA of the weights. ``joint_share`` raises the share of full joint generation.
4. ``RUN/checkpoint.pt`` (U-Net, EMA, optimizer, LR schedule, sampling generator, step) every ``ckpt_minutes`` and at
   the end; ``--resume`` continues exactly where it stopped. ``--export DIR`` writes a full StemforgeModel checkpoint
   (EMA U-Net weights) marked trained.
"""

from __future__ import annotations

import os

# libgomp (torch's OpenMP on Linux) reads its wait policy once, when torch is first imported. Its default spins a
# waiting thread at every parallel region; on a shared 2-core host (load 4-9) the spinning thread holds the core its
# peer needs, and a 2-thread training step ran ~7x slower (bench/train_step.py: 20.4 s vs 3.0 s). PASSIVE lets it
# sleep. An explicit OMP_WAIT_POLICY wins; `stemforge train diffusion` imports this module before torch.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import dataclasses
import hashlib
import json
import logging
import math
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor

from engine import checkpoint as ckpt
from engine.config import HOP, SAMPLE_RATE, ModelConfig, get_config
from engine.diffusion.schedule import NoiseSchedule
from engine.train.common import (
    CHECKPOINT_NAME,
    EMA,
    CheckpointTimer,
    Progress,
    StopFlag,
    load_checkpoint,
    resolve_device,
    save_checkpoint,
    set_threads,
    setup_run_logging,
)
from engine.text.attributes import attribute_tensor, prompt_attributes
from engine.text.chords import CHORD_FEATURES, chord_features
from engine.diffusion.chroma import (BASS_BAND, POOLS, TONAL_BAND, chord_roots, chroma_share_loss, mono_decoder,
                                    root_targets, scale_targets)
from engine.train.tasks import DiffusionBatch, build_batch, sample_plan
from protocol.errors import CheckpointNotFound, InvalidArgument, ModelError

log = logging.getLogger(__name__)


# ---- options -------------------------------------------------------------------------------------
@dataclass
class DiffusionTrainOptions:
    data: str | None = None  # corpus folder (studio render or stem folders)
    ae: str | None = None  # autoencoder run / export folder or model checkpoint directory
    init_unet: bool = False  # start the U-Net from the --ae model checkpoint's U-Net (fresh optimizer)
    init_unet_from: str | None = None  # start the U-Net from this model checkpoint's U-Net (another autoencoder)
    out: str = "runs/diffusion_tiny"
    config: str | ModelConfig = "tiny"
    steps: int = 10_000
    batch: int = 8
    seconds: float | None = None  # crop length (default: config.segment_seconds)
    lr: float = 2e-4
    warmup: int = 200
    joint_share: float = 0.0  # probability of full joint generation per item (engine/train/tasks.py)
    chord_dropout: float = 0.2  # share of captioned items trained without their chord track (chord_conditioning)
    bass_root_weight: float = 0.0  # weight of the bass-root loss (engine.train.bass_root); 0: off
    bass_root_items: int = 4  # items a step whose predicted bass is decoded for it (the noisiest basses)
    bass_root_pool: str = "frame"  # the bass-root loss per STFT frame or per chord segment
    tonal_weight: float = 0.0  # weight of the chord-tone loss of the instrument and melody stems; 0: off
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    device: str = "auto"
    threads: int = 2
    seed: int = 0
    ckpt_minutes: float = 10.0
    log_every: int = 25
    resume: bool = False
    export: str | None = None

    def validate(self) -> None:
        if self.steps < 1 or self.batch < 1:
            raise InvalidArgument(f"--steps and --batch must be >= 1, got {self.steps} / {self.batch}")
        if self.lr <= 0 or self.warmup < 0 or self.grad_clip <= 0:
            raise InvalidArgument("lr and grad_clip must be > 0 and warmup >= 0")
        if self.seconds is not None and self.seconds <= 0:
            raise InvalidArgument(f"--seconds must be > 0, got {self.seconds}")
        if not 0.0 <= self.joint_share <= 1.0:
            raise InvalidArgument(f"--joint-share must be in [0, 1], got {self.joint_share}")
        if not 0.0 <= self.chord_dropout <= 1.0:
            raise InvalidArgument(f"--chord-dropout must be in [0, 1], got {self.chord_dropout}")
        if self.bass_root_weight < 0 or self.bass_root_items < 1:
            raise InvalidArgument(f"--bass-root-weight must be >= 0 and --bass-root-items >= 1, got "
                                  f"{self.bass_root_weight} / {self.bass_root_items}")
        if self.bass_root_pool not in POOLS:
            raise InvalidArgument(f"--bass-root-pool must be one of {', '.join(POOLS)}, got {self.bass_root_pool!r}")
        if self.tonal_weight < 0:
            raise InvalidArgument(f"--tonal-weight must be >= 0, got {self.tonal_weight}")
        if self.init_unet and self.init_unet_from:
            raise InvalidArgument("--init-unet and --init-unet-from are exclusive")


# ---- latents -------------------------------------------------------------------------------------
@dataclass
class LatentSet:
    """Whitened latents of a corpus: ``latents[i]`` is (k, D, F_i); ``present`` (N, k) bool."""

    latents: list[Tensor]
    present: Tensor
    captions: list[str]
    ids: list[str]
    harmony: list[Any] | None = None  # per item its chords (engine.text.chords.Harmony) or None; None: none known

    def __post_init__(self) -> None:
        if not self.latents:
            raise InvalidArgument("the latent set is empty")
        shapes = {tuple(z.shape[:2]) for z in self.latents}
        if len(shapes) != 1 or self.present.shape != (len(self.latents), self.latents[0].shape[0]):
            raise InvalidArgument(f"inconsistent latent set: stem/channel shapes {shapes}, present "
                                  f"{tuple(self.present.shape)} for {len(self.latents)} items")
        if self.harmony is not None and len(self.harmony) != len(self.latents):
            raise InvalidArgument(f"latent set: {len(self.harmony)} harmonies for {len(self.latents)} items")

    def __len__(self) -> int:
        return len(self.latents)

    def crop_frames(self, wanted: int) -> int:
        return max(2, min(wanted, min(int(z.shape[-1]) for z in self.latents)))

    def sample(self, batch: int, frames: int, generator: torch.Generator,
               index: list[int] | None = None) -> tuple[Tensor, Tensor, list[str], Tensor]:
        """Random items and aligned crops: z0 (B, k, D, frames) float32, present (B, k), captions (B), and the
        crops' first frames (B,) int64 (the beat clock's grid offset: items start on a downbeat). ``index``, a
        list, receives the items drawn."""
        idx = torch.randint(0, len(self), (batch,), generator=generator).tolist()
        if index is not None:
            index[:] = idx
        crops, starts = [], []
        for i in idx:
            z = self.latents[i]
            start = int(torch.randint(0, int(z.shape[-1]) - frames + 1, (1,), generator=generator))
            crops.append(z[:, :, start:start + frames].float())
            starts.append(start)
        return (torch.stack(crops), self.present[idx].clone(), [self.captions[i] for i in idx],
                torch.tensor(starts, dtype=torch.int64))


def open_corpus(data: str | Path, stems: tuple[str, ...]) -> Any:
    """A studio render folder (metadata.jsonl) or a stem-folder dataset."""
    from engine.data.stems import StemFolderDataset, StudioCorpus

    root = Path(data)
    if not root.is_dir():
        raise InvalidArgument(f"--data {root}: not a folder")
    return StudioCorpus(root, stems) if (root / "metadata.jsonl").is_file() else StemFolderDataset(root, stems=stems)


def _state_digest(module: torch.nn.Module) -> bytes:
    return hashlib.sha256(ckpt.tensors_to_bytes(module.state_dict())).digest()


def encode_corpus(model: Any, corpus: Any, cache_dir: str | Path, device: torch.device) -> LatentSet:
    """Encode every item of ``corpus`` once with the frozen autoencoder (cached on disk, see module docstring)."""
    from safetensors.torch import load_file, save_file

    h = hashlib.sha256(_state_digest(model.autoencoder) + _state_digest(model.whitening))
    for item in corpus.items:
        sizes = [(s, p.stat().st_size if p is not None and p.is_file() else -1) for s, p in sorted(item.paths.items())]
        h.update(json.dumps([item.id, item.caption, sizes]).encode())
    key = h.hexdigest()[:16]
    cache_dir = Path(cache_dir)
    tensors_path, index_path = cache_dir / f"latents-{key}.safetensors", cache_dir / f"latents-{key}.json"
    if tensors_path.is_file() and index_path.is_file():
        index = json.loads(index_path.read_text())
        tensors = load_file(str(tensors_path))
        log.info("latent cache: %d items from %s", len(index["ids"]), tensors_path)
        return LatentSet([tensors[f"z{i}"].float() for i in range(len(index["ids"]))],
                         torch.tensor(index["present"], dtype=torch.bool), index["captions"], index["ids"],
                         corpus_harmony(corpus))
    latents, present, captions, ids = [], [], [], []
    t0 = time.monotonic()
    with torch.inference_mode():
        for i, item in enumerate(corpus.items):
            audio, pres = corpus.load(i)  # (k, 2, N), (k,)
            z = model.encode_stems(torch.from_numpy(audio)[None].to(device))[0].float().cpu()  # (k, D, F)
            latents.append(z.to(torch.float16))
            present.append(pres.tolist())
            captions.append(item.caption)
            ids.append(item.id)
            if (i + 1) % 25 == 0:
                log.info("encoded %d/%d items (%.1f s)", i + 1, len(corpus.items), time.monotonic() - t0)
    cache_dir.mkdir(parents=True, exist_ok=True)
    save_file({f"z{i}": z.contiguous() for i, z in enumerate(latents)}, str(tensors_path))
    index_path.write_text(json.dumps({"ids": ids, "captions": captions, "present": present}))
    log.info("encoded %d items to latents in %.1f s -> %s", len(ids), time.monotonic() - t0, tensors_path)
    return LatentSet([z.float() for z in latents], torch.tensor(present, dtype=torch.bool), captions, ids,
                     corpus_harmony(corpus))


def corpus_harmony(corpus: Any) -> list[Any] | None:
    """The chords of every item of a studio corpus (:func:`engine.data.studio.render.item_harmony`), or None
    for a corpus without chord metadata (user stem folders: trained without a chord track)."""
    from engine.data.studio.render import item_harmony

    out = [item_harmony(it.meta) if it.meta.get("progression") else None for it in corpus.items]
    known = sum(h is not None for h in out)
    if known:
        log.info("chords: %d of %d items", known, len(out))
    return out if known else None


# ---- text ----------------------------------------------------------------------------------------
class TextCache:
    """Text-encoder outputs per prompt string (LRU of ``max_entries``); returns padded batches.

    Prompts are encoded one at a time, so a prompt's states do not depend on its batch (bit-exact resumes); encoder
    states are zero at padding positions, so re-padding cached rows with zeros reproduces a batch encode. Rows are
    kept in float16 (about 40 KB a prompt: 32768 entries ~ 1.3 GB); a miss costs one text-encoder call.
    """

    def __init__(self, encode: Callable[[list[str]], tuple[Tensor, Tensor]], max_entries: int = 32768) -> None:
        self.encode = encode
        self.max_entries = max_entries
        self._rows: OrderedDict[str, Tensor] = OrderedDict()
        self.hits = self.misses = 0

    def __call__(self, prompts: list[str]) -> tuple[Tensor, Tensor]:
        """prompts (B) -> states (B, L, H) float32 on the CPU, mask (B, L) bool."""
        missing = list(dict.fromkeys(p for p in prompts if p not in self._rows))
        for p in missing:  # one at a time: a prompt's states never depend on what it was batched with
            states, mask = self.encode([p])
            self._rows[p] = states[0, : int(mask[0].sum())].detach().to("cpu", torch.float16)
        self.misses += len(missing)
        self.hits += len(prompts) - len(missing)
        rows = [self._rows[p] for p in prompts]
        for p in prompts:
            self._rows.move_to_end(p)
        while len(self._rows) > self.max_entries:
            self._rows.popitem(last=False)
        L = max(1, max(r.shape[0] for r in rows))
        out = torch.zeros(len(rows), L, rows[0].shape[-1])
        mask = torch.zeros(len(rows), L, dtype=torch.bool)
        for b, r in enumerate(rows):
            out[b, : r.shape[0]] = r.float()
            mask[b, : r.shape[0]] = True
        return out, mask


def make_prompt_fn(stems: tuple[str, ...]) -> Callable[..., str]:
    """``make_prompt(caption|None, (task, generated, given)|None)`` with the pipeline's prompt functions."""
    from engine.text.prompt import build_prompt, task_prefix

    def make(caption: str | None, prefix: tuple[str, list[str], list[str]] | None) -> str:
        pre = task_prefix(prefix[1], prefix[2], prefix[0], stems=stems) if prefix is not None else None
        return build_prompt(caption or "", task_prefix=pre)

    return make


# ---- the step ------------------------------------------------------------------------------------
@dataclass
class BassRootTerm:
    """The bass-root loss's parts for :func:`batch_loss` (:mod:`engine.train.bass_root`)."""

    decode: Callable[[Tensor, int], Tensor]  # whitened (n, D, F) -> mono audio (n, samples), differentiable
    weight: float
    stem: int  # the bass track's index
    schedule: NoiseSchedule
    items: int = 4  # per forward group, the items with the noisiest generated bass are decoded
    pool: str = "frame"  # the bass term per STFT frame or per chord segment (engine.train.bass_root.POOLS)
    tonal_weight: float = 0.0  # weight of the chord-tone terms of the other tonal stems; 0: off
    tonal: tuple[tuple[int, str], ...] = ()  # (stem index, "tones" | "scale") for those terms


PART_LABELS = {"bass": "root", "tones": "tones", "scale": "scale"}  # progress-line names of the chroma terms


def _tonal_jobs(term: BassRootTerm) -> list[tuple[str, int, str, float, tuple[float, float], str]]:
    """(part name, stem, target kind, weight, band, pool) of each chroma term ``term`` asks for."""
    jobs = [("bass_root", term.stem, "root", term.weight, BASS_BAND, term.pool)] if term.weight > 0 else []
    if term.tonal_weight > 0:
        jobs += [(f"{kind}_{stem}", stem, kind, term.tonal_weight, TONAL_BAND, "segment") for stem, kind in term.tonal]
    return jobs


def batch_loss(unet: torch.nn.Module, batch: DiffusionBatch, states: Tensor, text_mask: Tensor,
               num_stems: int, bass_root: BassRootTerm | None = None,
               parts: dict[str, float] | None = None) -> Tensor:
    """Masked MSE to ``batch.target`` (epsilon or v) over the batch, one U-Net forward per mode (bi-/unidirectional).

    ``bass_root`` (with ``batch.chords``): plus its weight x the bass-root loss
    (:func:`engine.train.bass_root.chroma_share_loss` on the given chords' roots, per frame or per chord segment)
    of the U-Net's data prediction of the bass track, decoded, for the ``bass_root.items`` items of each forward
    whose generated bass is noisiest, each frame weighted by the loss mask and the bass track's sigma(t)^2; and
    with ``tonal_weight``, the same kind of term, per chord segment, for each stem of ``tonal`` (the instrument on
    the sounding chord's tones, the melody on the crop's chord tones). All the decodes of a forward go through
    the decoder in one call. ``parts`` receives ``mse`` and each term by name (``bass_root``, ``tones_<stem>``,
    ``scale_<stem>``: the loss per scored STFT frame, sigma(t)^2-weighted, before its weight)."""
    B, C, F = batch.eps.shape
    D = C // num_stems
    attrs = attribute_tensor(batch.prompts).to(batch.eps.device)  # tempo + key of the same prompts
    total = batch.eps.new_zeros(())
    jobs = _tonal_jobs(bass_root) if bass_root is not None else []
    use_root = bool(jobs) and batch.chords is not None
    sums: dict[str, Any] = {}
    counts: dict[str, Any] = {}
    for causal, idx in batch.mode_groups():
        offset = batch.grid_offset[idx.cpu()].to(batch.eps.device) if batch.grid_offset is not None else None
        chords = batch.chords[idx.cpu()].to(batch.eps.device) if batch.chords is not None else None
        pred = unet(batch.x[idx], batch.t[idx], states[idx], text_mask[idx], causal=causal,
                    attrs=attrs[idx], grid_offset=offset, chords=chords)  # (n, k*D, F)
        err = (pred.float() - batch.target[idx]).reshape(len(idx), num_stems, D, F).pow(2)
        total = total + (err * batch.loss_mask[idx][:, :, None, :]).sum()
        if use_root:
            labels = chord_roots(chords)  # the given chords' roots; -1 where none are given (dropped)
            tones = chords[:, :12]
            picks, x0s, targets, weights = [], [], [], []
            for name, stem, kind, _, band, pool in jobs:
                t = batch.t[idx][:, stem]
                mask = batch.loss_mask[idx][:, stem]
                useful = ((mask * (labels >= 0).to(mask.dtype)).sum(dim=1) > 0).nonzero().flatten()
                if not useful.numel():
                    continue
                pick = useful[t[useful].argsort(descending=True)[: bass_root.items]]
                s = slice(stem * D, (stem + 1) * D)
                x0s.append(bass_root.schedule.x0_from_output(pred[pick, s].float(), batch.x[idx][pick, s], t[pick]))
                # sigma(t)^2: where the notes are decided (high noise), not where the stem is still visible
                weights.append(mask[pick] * bass_root.schedule.sigma(t[pick]).to(mask.device, mask.dtype)[:, None] ** 2)
                targets.append(root_targets(labels[pick]) if kind == "root"
                               else tones[pick] if kind == "tones" else scale_targets(tones[pick]))
                picks.append((name, len(pick), band, pool))
            if picks:
                audio = bass_root.decode(torch.cat(x0s), F * HOP)  # one decoder call for every stem's items
                start = 0
                for (name, n, band, pool), tgt, w in zip(picks, targets, weights):
                    loss_sum, frames = chroma_share_loss(audio[start:start + n], tgt, w, band, pool)
                    sums[name] = sums.get(name, 0.0) + loss_sum
                    counts[name] = counts.get(name, 0.0) + frames
                    start += n
    mse = total / (batch.loss_mask.sum() * D).clamp_min(1.0)
    if parts is not None:
        parts["mse"] = float(mse.detach())
    if not use_root:
        return mse
    loss = mse
    for name, _, _, weight, _, _ in jobs:
        if name in sums:
            term = sums[name] / torch.as_tensor(counts[name]).clamp_min(1.0)
            loss = loss + weight * term
            if parts is not None:
                parts[name] = float(term.detach())
    return loss


class _Laps:
    """``lap(name)`` adds the wall seconds since the previous lap to ``timings[name]`` (no-op without a dict).

    On CUDA it synchronises first, so a phase is charged with its own kernels; only used when timing is asked for.
    """

    def __init__(self, timings: dict[str, float] | None) -> None:
        self.timings = timings
        self.last = time.perf_counter()

    def __call__(self, name: str) -> None:
        if self.timings is None:
            return
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.synchronize()
        now = time.perf_counter()
        self.timings[name] = self.timings.get(name, 0.0) + now - self.last
        self.last = now


def lr_factor(step: int, total: int, warmup: int) -> float:
    """Linear warm-up over ``warmup`` steps, then linear decay to 0 at ``total``."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    return max(0.0, (total - step) / max(1, total - warmup))


class DiffusionTrainer:
    """Trains ``model.unet`` on a :class:`LatentSet`; the autoencoder is not touched."""

    def __init__(self, model: Any, latents: LatentSet, opts: DiffusionTrainOptions,
                 text_cache: TextCache | None = None) -> None:
        opts.validate()
        self.model = model
        self.cfg: ModelConfig = model.config
        self.latents = latents
        self.opts = opts
        self.device = resolve_device(opts.device)
        self.out = Path(opts.out)
        self.unet = model.unet.to(self.device)
        self.schedule = NoiseSchedule.from_config(self.cfg)
        seconds = opts.seconds if opts.seconds is not None else self.cfg.segment_seconds
        self.frames = latents.crop_frames(int(round(seconds * SAMPLE_RATE / HOP)))
        self.text = text_cache or TextCache(lambda p: model.encode_text(p))
        self.make_prompt = make_prompt_fn(tuple(self.cfg.stems))
        # fused AdamW: one kernel over all tensors (CPU: ~14 ms instead of ~38 ms a step for the tiny U-Net)
        self.optimizer = torch.optim.AdamW(self.unet.parameters(), lr=opts.lr, betas=opts.betas,
                                           weight_decay=opts.weight_decay,
                                           fused=True if self.device.type in ("cpu", "cuda") else None)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: lr_factor(s, opts.steps, opts.warmup))
        self.ema = EMA(self.unet, decay=opts.ema_decay)
        self.generator = torch.Generator().manual_seed(opts.seed)
        self.step = 0
        self.last_loss = float("nan")
        self.seconds_per_step = float("nan")
        self.last_parts: dict[str, float] = {}
        self.bass_root: BassRootTerm | None = None
        if opts.bass_root_weight > 0 or opts.tonal_weight > 0:
            self.bass_root = self._bass_root_term()

    def _bass_root_term(self) -> BassRootTerm:
        """The bass-root loss, decoding through the model's frozen autoencoder (eval mode: no latent masking)."""
        stems = self.cfg.stems
        if not self.cfg.unet.chord_conditioning or self.latents.harmony is None or "bass" not in stems:
            raise InvalidArgument("--bass-root-weight and --tonal-weight need a U-Net with a chord track, a bass "
                                  "stem and a corpus with chords (studio renders)")
        self.model.autoencoder.to(self.device).eval().requires_grad_(False)
        self.model.whitening.to(self.device).requires_grad_(False)
        tonal = tuple((stems.index(name), kind) for name, kind in (("instrument", "tones"), ("melody", "scale"))
                      if name in stems)
        return BassRootTerm(mono_decoder(self.model), self.opts.bass_root_weight, stems.index("bass"), self.schedule,
                            self.opts.bass_root_items, self.opts.bass_root_pool, self.opts.tonal_weight, tonal)

    # ---- state ---------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"step": self.step, "model": self.unet.state_dict(), "ema": self.ema.state_dict(),
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "generator": self.generator.get_state(), "config": self.cfg.to_dict(), "loss": self.last_loss,
                "options": {k: v for k, v in dataclasses.asdict(self.opts).items() if k != "config"}}

    def save(self) -> Path:
        return save_checkpoint(self.out / CHECKPOINT_NAME, self.state_dict())

    def load(self, path: str | Path | None = None) -> None:
        state = load_checkpoint(path or self.out / CHECKPOINT_NAME, map_location=self.device)
        if state.get("config") != self.cfg.to_dict():
            raise ModelError(f"checkpoint in {self.out} was trained with another model configuration")
        ckpt.load_state_strict(self.unet, state["model"], "checkpoint U-Net")
        self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.generator.set_state(state["generator"])
        self.step = int(state["step"])
        self.last_loss = float(state.get("loss", float("nan")))
        log.info("resumed diffusion training at step %d", self.step)

    # ---- training ------------------------------------------------------------------------------------
    def _latent_batch(self, step: int) -> DiffusionBatch:
        """Crops, task plan and noising for ``step`` (no text yet), on the training device."""
        drawn: list[int] = []
        z0, present, captions, starts = self.latents.sample(self.opts.batch, self.frames, self.generator, drawn)
        plan = sample_plan(self.cfg, present, captions, self.frames, step, self.opts.steps, self.generator,
                           make_prompt=self.make_prompt, joint_share=self.opts.joint_share)
        batch = build_batch(plan, z0, self.schedule, self.generator)
        batch.grid_offset = starts.double() * HOP / SAMPLE_RATE  # seconds from the item's first downbeat
        if self.cfg.unet.chord_conditioning:
            batch.chords = self._chord_batch(drawn, batch)
        batch.x, batch.t, batch.eps, batch.target, batch.loss_mask = (v.to(self.device) for v in
                                                        (batch.x, batch.t, batch.eps, batch.target, batch.loss_mask))
        return batch

    def _chord_batch(self, drawn: list[int], batch: DiffusionBatch) -> Tensor:
        """(B, 24, F) chord tracks of the drawn items on their crops' grids; zeros where the prompt lost its
        caption (guidance's unconditional branch has no chords either), with probability ``chord_dropout``
        besides (so that prompts without chords keep working), and for items without known chords."""
        out = torch.zeros(len(drawn), CHORD_FEATURES, self.frames)
        harmony = self.latents.harmony
        if harmony is None:
            return out
        drop = torch.rand(len(drawn), generator=self.generator) < self.opts.chord_dropout
        for b, i in enumerate(drawn):
            bpm, key = prompt_attributes(batch.prompts[b])
            if harmony[i] is None or key is None or bool(drop[b]):
                continue
            out[b] = chord_features(harmony[i], bpm, float(batch.grid_offset[b]), self.frames, HOP / SAMPLE_RATE)
        return out

    def make_batch(self, step: int) -> tuple[DiffusionBatch, Tensor, Tensor]:
        batch = self._latent_batch(step)
        states, mask = self.text(batch.prompts)
        return batch, states.to(self.device), mask.to(self.device)

    def train_step(self, timings: dict[str, float] | None = None,
                   prepared: tuple[DiffusionBatch, Tensor, Tensor] | None = None) -> float:
        """One optimisation step; returns the loss.

        ``prepared``: a ``make_batch(step)`` result built ahead (for instance by a prefetching thread); default:
        built here.

        ``timings``, when given, accumulates wall seconds per phase under the keys ``data`` (crops, plan, noising),
        ``text``, ``forward``, ``backward``, ``optimizer`` (clipping, AdamW, LR schedule) and ``ema``
        (bench/train_step.py reads them).
        """
        lap = _Laps(timings)
        self.unet.train()
        if prepared is not None:
            batch, states, mask = prepared
        else:
            batch = self._latent_batch(self.step)
            lap("data")
            states, mask = self.text(batch.prompts)
            states, mask = states.to(self.device), mask.to(self.device)
            lap("text")
        parts: dict[str, float] = {}
        loss = batch_loss(self.unet, batch, states, mask, self.cfg.num_stems, self.bass_root, parts)
        self.last_parts = parts
        lap("forward")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        lap("backward")
        torch.nn.utils.clip_grad_norm_(self.unet.parameters(), self.opts.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        lap("optimizer")
        self.ema.update(self.unet)
        self.step += 1
        self.last_loss = float(loss.detach())
        lap("ema")
        return self.last_loss

    def run(self) -> dict[str, float]:
        """Train until ``opts.steps``; returns a summary (final loss, seconds per step, steps)."""
        self.out.mkdir(parents=True, exist_ok=True)
        if self.opts.resume and (self.out / CHECKPOINT_NAME).is_file():
            self.load()
        elif self.opts.resume:
            log.warning("--resume: no checkpoint in %s, starting from step 0", self.out)
        n_params = sum(p.numel() for p in self.unet.parameters())
        log.info("diffusion: %d items, crops of %d frames, batch %d, %d steps, U-Net %.2f M parameters, %s",
                 len(self.latents), self.frames, self.opts.batch, self.opts.steps, n_params / 1e6, self.device)
        progress = Progress(self.opts.steps, initial=self.step, desc="diffusion", log_every=self.opts.log_every,
                            logger=log)
        timer = CheckpointTimer(self.opts.ckpt_minutes * 60.0)
        start_step, t0 = self.step, time.monotonic()
        stop = StopFlag()
        try:
            while self.step < self.opts.steps and not stop.requested:
                loss = self.train_step()
                if not np.isfinite(loss):
                    raise ModelError(f"diffusion loss became {loss} at step {self.step}")
                progress.update(loss=loss, lr=self.scheduler.get_last_lr()[0], **{
                    PART_LABELS.get(k.split("_")[0], k): v for k, v in self.last_parts.items() if k != "mse"})
                if timer.due():
                    self.save()
                    timer.mark()
        finally:
            progress.close()
            stop.restore()
        if stop.requested:
            log.info("stop requested (signal %s): saving at step %d", stop.signum, self.step)
        done = self.step - start_step
        self.seconds_per_step = (time.monotonic() - t0) / done if done else float("nan")
        self.save()
        summary = {"steps": float(self.step), "loss": self.last_loss, "seconds_per_step": self.seconds_per_step,
                   "text_cache_hits": float(self.text.hits), "text_cache_misses": float(self.text.misses)}
        log.info("diffusion done: %s", " ".join(f"{k}={v:.4g}" for k, v in summary.items()))
        return summary

    def export(self, directory: str | Path, extra: dict[str, Any] | None = None) -> str:
        """Write the model with the EMA U-Net as a checkpoint directory marked trained; returns its hash."""
        self.ema.copy_to(self.unet)
        training = {"kind": "diffusion", "steps": self.step, "batch": self.opts.batch, "frames": self.frames,
                    "lr": self.opts.lr, "ema_decay": self.opts.ema_decay, "joint_share": self.opts.joint_share,
                    "items": len(self.latents),
                    **({"bass_root_weight": self.opts.bass_root_weight, "bass_root_items": self.opts.bass_root_items,
                        "bass_root_pool": self.opts.bass_root_pool, "tonal_weight": self.opts.tonal_weight}
                       if self.bass_root is not None else {}),
                    "final_loss": self.last_loss,
                    "seconds_per_step": self.seconds_per_step if math.isfinite(self.seconds_per_step) else None,
                    "device": str(self.device), **(extra or {})}
        return self.model.save_pretrained(directory, training=training, trained=True)


# ---- base model ----------------------------------------------------------------------------------
def load_base_model(ae: str | Path, config: str | ModelConfig = "tiny", seed: int = 0,
                    init_unet: bool = False, unet_from: str | Path | None = None) -> Any:
    """A fresh U-Net from ``config`` with the autoencoder + whitening of ``ae`` (see module docstring).

    ``init_unet``: ``ae`` is a full model checkpoint and its U-Net weights start the training (a partial run
    continued with a fresh optimizer). ``unet_from``: the U-Net weights come from that model checkpoint
    instead, while the autoencoder and whitening come from ``ae`` (a U-Net carried over to a new latent space:
    its text, time and clock paths are kept, its latent mapping is relearned)."""
    from engine.model import StemforgeModel

    path = Path(ae)
    cfg = config if isinstance(config, ModelConfig) else get_config(config)
    if not path.exists():
        raise CheckpointNotFound(f"--ae {path}: not found", path=str(path))
    if (path / ckpt.UNET_FILE).is_file() and (path / ckpt.CONFIG_FILE).is_file():  # full model checkpoint
        src = StemforgeModel.from_pretrained(path)
        cfg = dataclasses.replace(cfg, autoencoder=src.config.autoencoder, whitened_dim=src.config.whitened_dim)
        model = StemforgeModel.from_config(cfg, seed=seed)
        model.autoencoder.load_state_dict(src.autoencoder.state_dict())
        model.whitening.load_state_dict(src.whitening.state_dict())
        if init_unet:
            init_unet_from(model.unet, src.unet, str(path))
    elif init_unet:
        raise InvalidArgument(f"--init-unet needs --ae to be a full model checkpoint (with {ckpt.UNET_FILE})")
    elif (path / CHECKPOINT_NAME).is_file():  # autoencoder run folder
        from engine.train.autoencoder import WHITENING, load_trained

        ae_model = load_trained(path, ema=True)
        cfg = dataclasses.replace(cfg, autoencoder=ae_model.cfg)
        model = StemforgeModel.from_config(cfg, seed=seed)
        model.autoencoder.load_state_dict(ae_model.state_dict())
        if not (path / WHITENING).is_file():
            raise ModelError(f"{path} has no {WHITENING}: run `stemforge train whitening --ae {path} --data DIR`")
        state, _ = ckpt.read_tensors(path / WHITENING)
        ckpt.load_state_strict(model.whitening, state, WHITENING)
    else:  # autoencoder export folder
        model = StemforgeModel.from_config(cfg, seed=seed, autoencoder_from=path)
    if not model.whitening.is_finalized:
        raise ModelError(f"the whitening statistics of {path} are not finalised: run `stemforge train whitening`")
    if unet_from is not None:
        src_path = Path(unet_from)
        src_model = StemforgeModel.from_pretrained(src_path)  # CheckpointNotFound / ConfigMismatch name the folder
        if src_model.config.whitened_dim != model.config.whitened_dim:
            raise ModelError(f"--init-unet-from {src_path}: whitened_dim {src_model.config.whitened_dim} "
                             f"!= {model.config.whitened_dim} of {path}")
        init_unet_from(model.unet, src_model.unet, str(src_path))
    model._hash = None  # weights changed after construction
    return model


ADDED_MODULES = {"attribute_conditioning": "attr_embed.", "beat_clock": "beat_clock.",
                 "chord_conditioning": "chord_track."}  # zero-initialised outputs


def init_unet_from(unet: torch.nn.Module, src: torch.nn.Module, name: str) -> None:
    """Copy ``src``'s weights into ``unet``. The configurations must match, except that ``unet`` may add the
    attribute embedding (``attribute_conditioning``) or the beat clock (``beat_clock``) to a ``src`` trained
    without them: those modules start at their zero-initialised outputs, so the copied U-Net computes exactly
    what ``src`` did."""
    a, b = unet.cfg.unet, src.cfg.unet
    off = {flag: False for flag in ADDED_MODULES}
    if dataclasses.replace(a, **off) != dataclasses.replace(b, **off) \
            or any(getattr(b, flag) and not getattr(a, flag) for flag in ADDED_MODULES):
        raise ModelError(f"--init-unet: {name} has another U-Net configuration")
    missing, unexpected = unet.load_state_dict(src.state_dict(), strict=False)
    allowed = tuple(p for flag, p in ADDED_MODULES.items() if getattr(a, flag) and not getattr(b, flag))
    if unexpected or any(not k.startswith(allowed) for k in missing):
        raise ModelError(f"--init-unet: {name}: unexpected {unexpected[:3]}, missing {missing[:3]}")
    if missing:
        log.info("--init-unet: %s lacks %s; they start at zero (same function)", name,
                 ", ".join(sorted({k.split(".")[0] for k in missing})))


def train_diffusion(opts: DiffusionTrainOptions) -> tuple[dict[str, float], str | None]:
    """The whole command: base model, latent cache, training, optional export. Returns (summary, export hash)."""
    opts.validate()
    if not opts.data or not opts.ae:
        raise InvalidArgument("--data and --ae are required")
    set_threads(opts.threads)
    handler = setup_run_logging(opts.out)
    try:
        model = load_base_model(opts.ae, opts.config, seed=opts.seed, init_unet=opts.init_unet,
                                unet_from=opts.init_unet_from)
        device = resolve_device(opts.device)
        model.to(device)
        corpus = open_corpus(opts.data, tuple(model.config.stems))
        latents = encode_corpus(model, corpus, opts.out, device)
        trainer = DiffusionTrainer(model, latents, opts)
        summary = trainer.run()
        digest = None
        if opts.export:
            digest = trainer.export(opts.export, {"data": str(opts.data), "autoencoder": str(opts.ae)})
        return summary, digest
    finally:
        logging.getLogger("engine").removeHandler(handler)
        handler.close()
