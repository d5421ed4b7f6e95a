"""Training of the audio autoencoder (JEN-1 section 4.1) and the export of its EMA weights.

Recipe: random crops of stems (bass, drums, instrument, melody) and mixes; reconstruction losses on the final
waveform (multi-resolution STFT log-power L1 + spectral convergence + smooth log-spectral distance, and waveform
L1); 5% latent-frame masking before the decoder; a small L2 penalty on the (tanh-bounded) latent; AdamW with
gradient clipping; EMA weights used for evaluation and export; atomic resumable checkpoints every few minutes;
a periodic held-out evaluation (log-spectral distance, SI-SDR, MR-STFT distance with the EMA weights).

Export: ``python -m engine.train.autoencoder export RUN_DIR OUT_DIR`` writes ``autoencoder.safetensors``
(EMA weights), ``autoencoder.json`` (its AutoencoderConfig), ``config.json`` (a ModelConfig, only when OUT_DIR has
none) and ``whitening.safetensors`` when ``stemforge train whitening`` has stored one in RUN_DIR.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine.config import SAMPLE_RATE, AutoencoderConfig, autoencoder_config_dict, get_config
from engine.models.autoencoder import ENCODER_PREFIXES, AudioAutoencoder, instantaneous_deviation, steadiness
from engine.models.losses import (DEFAULT_RESOLUTIONS, MultiResolutionSTFTLoss, compressed_complex_loss,
                                  log_spectral_distance, si_sdr, waveform_l1)
from engine.train.common import (CHECKPOINT_NAME, EMA, CheckpointTimer, Progress, StopFlag, load_checkpoint,
                                 resolve_device, save_checkpoint, seed_everything, set_threads, setup_run_logging)
from engine.train.crops import CropSampler
from protocol.errors import CheckpointNotFound, InvalidArgument

log = logging.getLogger(__name__)

AE_WEIGHTS = "autoencoder.safetensors"
AE_CONFIG = "autoencoder.json"
WHITENING = "whitening.safetensors"


# ---- recipe -----------------------------------------------------------------------------------------
@dataclass
class TrainOptions:
    data: str
    out: str = "runs/ae_tiny"
    config: str = "tiny"
    steps: int = 2000
    batch: int = 6
    seconds: float = 0.5
    lr: float = 1e-3
    warmup: int = 100
    decay_steps: int = 0  # 0: constant lr after warmup
    lr_min: float = 1e-4
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    ema_decay: float = 0.995
    wave_weight: float = 20.0  # measured: x20 vs x1 gives SI-SDR -14 vs -29 dB at equal LSD
    lsd_weight: float = 1.0
    latent_l2: float = 1e-3
    mask_prob: float | None = None  # None -> cfg.latent_mask_prob (5%)
    if_weight: float = 0.0  # tonal path: weight of its frequency and gate supervision from the input (tonal_losses)
    complex_weight: float = 0.0  # weight of the compressed complex STFT loss (phase-aware), 0 = off
    stft_resolutions: tuple[tuple[int, int], ...] = DEFAULT_RESOLUTIONS  # (n_fft, hop) of the MR-STFT loss
    init_from: str | None = None  # start from this run folder's EMA weights or an exported autoencoder
    tonal_head: bool | None = None  # None: the config's; True adds the tonal path (engine.models.autoencoder)
    lowband_fft: int | None = None  # None: the config's; e.g. 8192 adds the encoder's low-band features
    latent_smooth: float = 0.0  # weight of the mean squared frame-to-frame latent difference (0 = off)
    freeze_encoder: bool = False  # train the decoder only: the latent space (and a U-Net trained on it) stays valid
    device: str = "auto"
    threads: int = 2
    seed: int = 0
    ckpt_minutes: float = 5.0
    eval_minutes: float = 5.0
    eval_clips: int = 6
    eval_seconds: float = 3.0
    heldout: str | None = None
    resume: bool = False
    log_every: int = 10


def tonal_losses(model: AudioAutoencoder, audio: torch.Tensor, deviation: torch.Tensor, gate_logit: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Supervision of the tonal path from the input audio (B, C, N); deviation, gate_logit (B*C, K, F).

    - frequency: circular distance ``1 - cos(advance error)`` between the predicted deviations and the input's
      phase-vocoder estimate (GANSynth's instantaneous frequency), weighted by the input's compressed magnitudes;
    - gate: binary cross-entropy against the steadiness of the input's frequencies (:func:`steadiness`), same
      weights: open on held partials, shut on noise and transients.
    """
    with torch.no_grad():
        target, weight = instantaneous_deviation(model.frame_spectrum(audio), model.cfg.n_fft, model.hop)
        steady = steadiness(target)
        total = weight.sum().clamp_min(1e-8)
    step = 2.0 * math.pi * model.hop / model.cfg.n_fft
    freq = (weight * (1.0 - torch.cos(step * (deviation[..., 1:] - target)))).sum() / total
    gate = (weight * torch.nn.functional.binary_cross_entropy_with_logits(gate_logit[..., 1:], steady, reduction="none")).sum() / total
    return freq, gate


class AutoencoderTrainer:
    """Holds model, EMA, optimizer and data; :meth:`step` does one update, :meth:`run` the loop."""

    def __init__(self, opts: TrainOptions, cfg: AutoencoderConfig | None = None) -> None:
        if opts.batch < 1 or opts.seconds <= 0 or opts.steps < 0:
            raise InvalidArgument("--batch must be >= 1, --seconds > 0 and --steps >= 0")
        self.opts = opts
        self.device = resolve_device(opts.device)
        set_threads(opts.threads)
        self.generator = seed_everything(opts.seed)
        self.rng = np.random.default_rng(opts.seed)
        self.cfg = cfg or get_config(opts.config).autoencoder
        if opts.tonal_head is not None:
            self.cfg = dataclasses.replace(self.cfg, tonal_head=opts.tonal_head)
        if opts.lowband_fft is not None:
            self.cfg = dataclasses.replace(self.cfg, lowband_fft=opts.lowband_fft)
        self.model = AudioAutoencoder(self.cfg).to(self.device)
        self.ema = EMA(self.model, opts.ema_decay)
        decay, no_decay = [], []
        for name, p in self.model.named_parameters():
            if opts.freeze_encoder and name.startswith(ENCODER_PREFIXES):
                p.requires_grad_(False)
                continue
            (no_decay if p.dim() < 2 or name.endswith("gamma") else decay).append(p)
        self.optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": opts.weight_decay},
                                            {"params": no_decay, "weight_decay": 0.0}],
                                           lr=opts.lr, betas=(0.8, 0.99))
        self.stft_loss = MultiResolutionSTFTLoss(tuple(map(tuple, opts.stft_resolutions)),
                                                 lsd_weight=opts.lsd_weight).to(self.device)
        self.mask_prob = self.cfg.latent_mask_prob if opts.mask_prob is None else opts.mask_prob
        self.step_count = 0
        self.run_dir = Path(opts.out)
        self.data = CropSampler(opts.data) if opts.data else None
        self.length = int(round(opts.seconds * SAMPLE_RATE))

    # ---- state ----------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"step": self.step_count, "model": self.model.state_dict(), "ema": self.ema.state_dict(),
                "optimizer": self.optimizer.state_dict(), "autoencoder_config": dataclasses.asdict(self.cfg),
                "options": dataclasses.asdict(self.opts), "rng": self.rng.bit_generator.state,
                "torch_rng": torch.get_rng_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        saved = AutoencoderConfig(**state["autoencoder_config"])
        if saved != self.cfg:
            raise InvalidArgument(f"checkpoint was trained with {saved}, not {self.cfg}")
        self.model.load_state_dict(state["model"])
        self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step_count = int(state["step"])
        if "rng" in state:
            self.rng.bit_generator.state = state["rng"]
        if "torch_rng" in state:
            torch.set_rng_state(state["torch_rng"])

    def init_weights_from(self, source: str | Path) -> None:
        """Fine-tuning start: the (EMA) weights of a run folder or an exported autoencoder of the same config."""
        trained = load_trained(source, ema=True)
        if dataclasses.replace(trained.cfg, tonal_head=self.cfg.tonal_head, lowband_fft=self.cfg.lowband_fft,
                               lowband_hz=self.cfg.lowband_hz) != self.cfg:
            raise InvalidArgument(f"--init-from {source}: trained with {trained.cfg}, not {self.cfg}")
        result = self.model.load_state_dict(trained.state_dict(), strict=False)
        new = [k for k in result.missing_keys if not k.startswith(("tonal.", "enc_low."))]
        if new or result.unexpected_keys:  # a tonal path or low band may be added, not dropped
            raise InvalidArgument(f"--init-from {source}: missing {new}, unexpected {result.unexpected_keys}")
        log.info("initialised from %s (step %s)", source, getattr(trained, "trained_step", "?"))

    def save(self) -> Path:
        path = save_checkpoint(self.run_dir / CHECKPOINT_NAME, self.state_dict())
        log.info("checkpoint saved at step %d -> %s", self.step_count, path)
        return path

    # ---- training ---------------------------------------------------------------------------------------
    def lr_at(self, step: int) -> float:
        """Linear warmup, then (with ``decay_steps`` > 0) cosine decay to ``lr_min`` at ``decay_steps``, then flat."""
        opts = self.opts
        lr = opts.lr * min(1.0, (step + 1) / max(1, opts.warmup))
        if opts.decay_steps > opts.warmup and step >= opts.warmup:
            frac = min(1.0, (step - opts.warmup) / (opts.decay_steps - opts.warmup))
            lr = opts.lr_min + (opts.lr - opts.lr_min) * 0.5 * (1.0 + math.cos(math.pi * frac))
        return lr

    def losses(self, audio: torch.Tensor) -> dict[str, torch.Tensor]:
        """audio (B, 2, N) -> loss terms; ``total`` is optimised."""
        recon, z, deviation = self.model.forward_with_deviation(audio, mask_prob=self.mask_prob,
                                                                generator=self.generator)
        terms = self.stft_loss(recon, audio)
        wave = waveform_l1(recon, audio)
        lat = z.square().mean()
        terms["wave_l1"] = wave
        terms["latent_l2"] = lat
        terms["total"] = terms["loss"] + self.opts.wave_weight * wave + self.opts.latent_l2 * lat
        if self.opts.latent_smooth:
            terms["latent_diff"] = (z[..., 1:] - z[..., :-1]).square().mean()
            terms["total"] = terms["total"] + self.opts.latent_smooth * terms["latent_diff"]
        if self.opts.if_weight and deviation is not None:
            terms["if"], terms["gate"] = tonal_losses(self.model, audio, *deviation)
            terms["total"] = terms["total"] + self.opts.if_weight * (terms["if"] + terms["gate"])
        if self.opts.complex_weight:
            terms["complex"] = compressed_complex_loss(recon, audio, self.cfg.n_fft, self.cfg.hop)
            terms["total"] = terms["total"] + self.opts.complex_weight * terms["complex"]
        return terms

    def step(self, audio: torch.Tensor) -> dict[str, float]:
        """One optimizer step on a batch (B, 2, N). Returns float loss terms."""
        self.model.train()
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr_at(self.step_count)
        terms = self.losses(audio.to(self.device))
        self.optimizer.zero_grad(set_to_none=True)
        terms["total"].backward()
        gnorm = torch.nn.utils.clip_grad_norm_([p for p in self.model.parameters() if p.requires_grad],
                                               self.opts.grad_clip)
        self.optimizer.step()
        self.ema.update(self.model)
        self.step_count += 1
        out = {k: float(v.detach()) for k, v in terms.items() if k != "loss"}
        out["grad_norm"] = float(gnorm)
        return out

    @torch.no_grad()
    def evaluate(self, clips: torch.Tensor, batch: int = 4) -> dict[str, float]:
        """EMA-weight reconstruction metrics over clips (n, 2, N): LSD (dB), SI-SDR (dB), MR-STFT distance."""
        metrics = {"lsd_db": 0.0, "si_sdr_db": 0.0, "stft_distance": 0.0}
        with self.ema.swap_into(self.model) as model:
            model.eval()
            n = clips.shape[0]
            for i in range(0, n, batch):
                x = clips[i:i + batch].to(self.device)
                y = model.decode(model.encode(x), x.shape[-1])
                w = x.shape[0] / n
                metrics["lsd_db"] += w * float(log_spectral_distance(y, x))
                metrics["si_sdr_db"] += w * float(si_sdr(y, x))
                metrics["stft_distance"] += w * float(MultiResolutionSTFTLoss().to(self.device)(y, x)["loss"])
        return metrics

    def run(self) -> dict[str, float]:
        if self.data is None:
            raise InvalidArgument("no training data given (--data)")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        handler = setup_run_logging(self.run_dir)
        try:
            return self._loop()
        finally:
            logging.getLogger("engine").removeHandler(handler)
            handler.close()

    def _heldout_clips(self) -> tuple[torch.Tensor, bool]:
        """(fixed evaluation clips (n, 2, N), whether they come from a held-out folder).

        The folder is ``--heldout`` or DATA/../heldout; while it is missing or empty (still being rendered),
        training crops stand in and the folder is looked for again at the next evaluation.
        """
        opts = self.opts
        root = Path(opts.heldout) if opts.heldout else Path(opts.data).parent / "heldout"
        length = int(round(opts.eval_seconds * SAMPLE_RATE))
        if root.is_dir() and root.resolve() != Path(opts.data).resolve():
            try:
                sampler = CropSampler(root)
                log.info("held-out evaluation on %d clips from %s (%d files)", opts.eval_clips, root, len(sampler))
                return sampler.fixed_clips(opts.eval_clips, length), True
            except InvalidArgument:
                pass
        log.warning("no held-out audio in %s yet; evaluating on fixed training crops", root)
        assert self.data is not None
        return self.data.fixed_clips(opts.eval_clips, length), False

    def _loop(self) -> dict[str, float]:
        opts = self.opts
        ckpt = self.run_dir / CHECKPOINT_NAME
        if opts.resume:
            if not ckpt.is_file():
                raise CheckpointNotFound(f"--resume: no checkpoint at {ckpt}", path=str(ckpt))
            self.load_state_dict(load_checkpoint(ckpt, self.device))
            log.info("resumed from %s at step %d", ckpt, self.step_count)
        elif self.step_count == 0:
            if opts.init_from:
                self.init_weights_from(opts.init_from)
            else:
                self.model.init_output_bias(self.data.sample(16, self.length,
                                                             np.random.default_rng(opts.seed + 1)))
            self.ema = EMA(self.model, opts.ema_decay)
        params = sum(p.numel() for p in self.model.parameters())
        log.info("autoencoder %.2fM params (%.1f MB fp32), %d files, batch %d x %.2f s, device %s, %d threads",
                 params / 1e6, params * 4 / 2**20, len(self.data), opts.batch, opts.seconds, self.device,
                 torch.get_num_threads())
        (self.run_dir / AE_CONFIG).write_text(json.dumps(autoencoder_config_dict(self.cfg), indent=2))
        clips, from_heldout = self._heldout_clips()
        ckpt_timer, eval_timer = CheckpointTimer(opts.ckpt_minutes * 60), CheckpointTimer(opts.eval_minutes * 60)
        progress = Progress(opts.steps, initial=self.step_count, desc="autoencoder", log_every=opts.log_every,
                            logger=log)
        last: dict[str, float] = {}
        t0 = time.monotonic()
        stop = StopFlag()
        try:
            while self.step_count < opts.steps and not stop.requested:
                audio = self.data.sample(opts.batch, self.length, self.rng)
                last = self.step(audio)
                if not math.isfinite(last["total"]):
                    raise InvalidArgument(f"loss became {last['total']} at step {self.step_count}; lower --lr")
                progress.update(1, loss=last["total"], lsd=last["lsd_db"], wave=last["wave_l1"],
                                **({"ldiff": last["latent_diff"]} if "latent_diff" in last else {}))
                if eval_timer.due():
                    if not from_heldout:
                        clips, from_heldout = self._heldout_clips()
                    self._log_eval(clips, time.monotonic() - t0)
                    eval_timer.mark()
                if ckpt_timer.due():
                    self.save()
                    added = self.data.refresh()
                    if added:
                        log.info("picked up %d new training files (%d in all)", added, len(self.data))
                    ckpt_timer.mark()
        finally:
            progress.close()
            stop.restore()
        if stop.requested:
            log.info("stop requested (signal %s): saving at step %d", stop.signum, self.step_count)
        self.save()
        if clips is not None:
            last.update({f"eval_{k}": v for k, v in self._log_eval(clips, time.monotonic() - t0).items()})
        return last

    def _log_eval(self, clips: torch.Tensor, elapsed: float) -> dict[str, float]:
        t = time.monotonic()
        metrics = self.evaluate(clips)
        metrics["eval_s"] = round(time.monotonic() - t, 1)
        log.info("eval step %d: LSD %.2f dB, SI-SDR %.2f dB, MR-STFT %.3f (EMA, %d held-out clips)",
                 self.step_count, metrics["lsd_db"], metrics["si_sdr_db"], metrics["stft_distance"],
                 clips.shape[0])
        record = {"step": self.step_count, "elapsed_s": round(elapsed, 1), **metrics}
        with open(self.run_dir / "eval.jsonl", "a") as fh:
            fh.write(json.dumps(record) + "\n")
        return metrics


# ---- export -------------------------------------------------------------------------------------------
def load_trained(run_dir: str | Path, ema: bool = True) -> AudioAutoencoder:
    """The autoencoder of a run folder (EMA weights by default) or of an exported folder, in eval mode."""
    run_dir = Path(run_dir)
    if (run_dir / CHECKPOINT_NAME).is_file():
        state = load_checkpoint(run_dir / CHECKPOINT_NAME)
        model = AudioAutoencoder(AutoencoderConfig(**state["autoencoder_config"]))
        model.load_state_dict(state["model"])
        if ema:
            _load_ema(model, state["ema"])
        model.trained_step = int(state["step"])  # type: ignore[assignment]
        return model.eval()
    if (run_dir / AE_WEIGHTS).is_file() and (run_dir / AE_CONFIG).is_file():
        from safetensors import safe_open
        from safetensors.torch import load_file

        model = AudioAutoencoder(AutoencoderConfig(**json.loads((run_dir / AE_CONFIG).read_text())))
        model.load_state_dict(load_file(str(run_dir / AE_WEIGHTS)))
        with safe_open(str(run_dir / AE_WEIGHTS), framework="pt") as fh:
            model.trained_step = int((fh.metadata() or {}).get("step", -1))  # type: ignore[assignment]
        return model.eval()
    raise CheckpointNotFound(f"{run_dir}: no {CHECKPOINT_NAME} nor {AE_WEIGHTS} + {AE_CONFIG}", path=str(run_dir))


def _load_ema(model: AudioAutoencoder, ema_state: dict[str, Any]) -> None:
    ema = EMA(model)
    ema.load_state_dict(ema_state)
    ema.copy_to(model)


def export(run_dir: str | Path, out_dir: str | Path, whitening_data: str | Path | None = None,
           whitening_files: int = 200) -> list[Path]:
    """Write the EMA autoencoder of RUN_DIR into OUT_DIR; returns the files written.

    Whitening: with ``whitening_data`` the statistics are computed now from the exported weights (at most
    ``whitening_files`` files); otherwise RUN_DIR's ``whitening.safetensors`` is copied when it was computed
    from the same training step, and left out (with a warning) when it is stale.
    """
    from safetensors.torch import save_file

    from engine.train.whitening_stats import accumulate_whitening, save_whitening, whitening_step

    run_dir, out_dir = Path(run_dir), Path(out_dir)
    model = load_trained(run_dir, ema=True)
    step = int(getattr(model, "trained_step", -1))
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(tensors, str(out_dir / AE_WEIGHTS), metadata={"format": "pt", "step": str(step)})
    written.append(out_dir / AE_WEIGHTS)
    (out_dir / AE_CONFIG).write_text(json.dumps(autoencoder_config_dict(model.cfg), indent=2))
    written.append(out_dir / AE_CONFIG)
    if not (out_dir / "config.json").exists():
        base = get_config("tiny")
        cfg = dataclasses.replace(base, autoencoder=model.cfg)
        if cfg.whitened_dim > model.cfg.latent_dim:
            cfg = dataclasses.replace(cfg, whitened_dim=model.cfg.latent_dim)
        (out_dir / "config.json").write_text(cfg.to_json())
        written.append(out_dir / "config.json")
    if whitening_data is not None:
        k = json.loads((out_dir / "config.json").read_text()).get("whitened_dim", model.cfg.latent_dim)
        whitening, frames = accumulate_whitening(model, whitening_data, k=int(k), max_files=whitening_files)
        written.append(save_whitening(whitening, out_dir / WHITENING, step=step, frames=frames))
    elif (run_dir / WHITENING).is_file() and run_dir.resolve() != out_dir.resolve():
        if whitening_step(run_dir / WHITENING) == step:
            shutil.copyfile(run_dir / WHITENING, out_dir / WHITENING)
            written.append(out_dir / WHITENING)
        else:
            log.warning("%s was computed at step %d, the weights are from step %d: not exported "
                        "(rerun `stemforge train whitening` or pass whitening data)", run_dir / WHITENING,
                        whitening_step(run_dir / WHITENING), step)
    log.info("exported %s (step %d)", ", ".join(p.name for p in written), step)
    return written


@torch.no_grad()
def evaluate_folder(run_dir: str | Path, data: str | Path, max_items: int = 8, seconds: float = 0.0,
                    threads: int = 2) -> dict[str, dict[str, float]]:
    """Reconstruction metrics of the EMA autoencoder on whole files of a render folder, per role and overall.

    Takes the first ``max_items`` item folders (sorted) and every role file in them; ``seconds`` > 0 keeps only
    the first seconds of each file. Returns {role: {"lsd_db", "si_sdr_db", "files"}, "all": {...}}.
    """
    set_threads(threads)
    model = load_trained(run_dir)
    sampler = CropSampler(data)
    items = sorted({p.parent for p in sampler.files})[:max_items]
    sums: dict[str, list[float]] = {}
    for i, path in enumerate(sampler.files):
        if path.parent not in items:
            continue
        n = sampler.frames[i] if seconds <= 0 else min(sampler.frames[i], int(round(seconds * SAMPLE_RATE)))
        x = torch.from_numpy(sampler.read(i, 0, n))[None]  # (1, 2, n)
        y = model.decode(model.encode(x), n)
        for key in (path.stem, "all"):
            acc = sums.setdefault(key, [0.0, 0.0, 0])
            acc[0] += float(log_spectral_distance(y, x))
            acc[1] += float(si_sdr(y, x))
            acc[2] += 1
    return {k: {"lsd_db": v[0] / v[2], "si_sdr_db": v[1] / v[2], "files": v[2]} for k, v in sums.items()}


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.train.autoencoder")
    sub = parser.add_subparsers(dest="cmd", required=True)
    ex = sub.add_parser("export", help="write EMA weights as autoencoder.safetensors + config into OUT_DIR")
    ex.add_argument("run_dir")
    ex.add_argument("out_dir")
    ex.add_argument("--whitening-data", default=None, help="compute whitening now over this render folder")
    ex.add_argument("--whitening-files", type=int, default=200, help="at most N files for the whitening")
    ex.add_argument("--threads", type=int, default=2)
    ev = sub.add_parser("eval", help="LSD / SI-SDR of the EMA autoencoder on whole held-out files, per role")
    ev.add_argument("run_dir")
    ev.add_argument("data")
    ev.add_argument("--items", type=int, default=8)
    ev.add_argument("--seconds", type=float, default=0.0, help="only the first S seconds of each file")
    ev.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.cmd == "eval":
        result = evaluate_folder(args.run_dir, args.data, args.items, args.seconds, args.threads)
        print(json.dumps(result, indent=2))
        return 0
    set_threads(args.threads)
    for path in export(args.run_dir, args.out_dir, args.whitening_data, args.whitening_files):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(_main())
