"""``stemforge train autoencoder`` and ``stemforge train whitening`` (``train diffusion`` lives elsewhere).

Heavy imports (torch) happen inside the handlers.
"""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any, groups: dict[str, argparse._SubParsersAction]) -> None:
    train = groups["train"]
    ae = train.add_parser("autoencoder", help="train the audio autoencoder on stems and mixes",
                          description="Train the frame-rate audio autoencoder (random crops of stems and mixes; "
                                      "MR-STFT + waveform losses, 5% latent masking, EMA, resumable).")
    ae.add_argument("--data", required=True, help="folder of renders (bass/drums/instrument/melody/mix .wav)")
    ae.add_argument("--heldout", default=None, help="held-out folder for evaluation (default DATA/../heldout)")
    ae.add_argument("--steps", type=int, default=2000)
    ae.add_argument("--batch", type=int, default=6)
    ae.add_argument("--seconds", type=float, default=0.5, help="crop length in seconds")
    ae.add_argument("--lr", type=float, default=1e-3)
    ae.add_argument("--decay-steps", type=int, default=0,
                    help="cosine decay of the learning rate to --lr-min at this step (0 = constant)")
    ae.add_argument("--lr-min", type=float, default=1e-4)
    ae.add_argument("--config", default="tiny", help="named configuration whose autoencoder is trained")
    ae.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    ae.add_argument("--threads", type=int, default=2,
                    help="CPU threads for torch (0 = torch default; use 1 on an oversubscribed machine)")
    ae.add_argument("--seed", type=int, default=0)
    ae.add_argument("--ema-decay", type=float, default=0.995)
    ae.add_argument("--wave-weight", type=float, default=20.0, help="weight of the waveform L1 loss")
    ae.add_argument("--ckpt-minutes", type=float, default=5.0, help="checkpoint every N minutes")
    ae.add_argument("--eval-minutes", type=float, default=5.0, help="held-out evaluation every N minutes")
    ae.add_argument("--eval-clips", type=int, default=6)
    ae.add_argument("--stft-resolutions", type=_resolutions, default=None, metavar="N:HOP,...",
                    help="(n_fft, hop) pairs of the multi-resolution STFT loss (default 512:128,2048:512); a fine "
                         "one such as 8192:2048 resolves semitones in the bass and middle registers")
    ae.add_argument("--complex-weight", type=float, default=0.0,
                    help="weight of a phase-aware loss on power-law compressed complex spectra (0 = off)")
    ae.add_argument("--tonal-head", action="store_true",
                    help="add the tonal synthesis path (integrated per-bin frequency; steady notes at any pitch)")
    ae.add_argument("--if-weight", type=float, default=0.0,
                    help="tonal path: weight of its frequency and gate supervision from the input's "
                         "phase-vocoder frequencies (0 = off)")
    ae.add_argument("--lowband-fft", type=int, default=None, metavar="N",
                    help="add the encoder's low-band features: log-magnitudes of an N-point STFT below 400 Hz "
                         "(e.g. 8192), a phase-free reading of the bass pitch")
    ae.add_argument("--latent-smooth", type=float, default=0.0, metavar="W",
                    help="weight of the mean squared frame-to-frame latent difference (0 = off)")
    ae.add_argument("--freeze-encoder", action="store_true",
                    help="train only the decoder, so the latent space and U-Nets trained on it stay valid")
    ae.add_argument("--init-from", default=None, metavar="DIR",
                    help="fine-tune: start from the EMA weights of this run folder or exported autoencoder")
    ae.add_argument("--out", default="runs/ae_tiny", help="run folder (checkpoint.pt, train.log, eval.jsonl)")
    ae.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    ae.add_argument("--export", default=None, metavar="DIR", help="after training, export EMA weights to DIR")
    ae.set_defaults(func=_train_autoencoder)

    wh = train.add_parser("whitening", help="accumulate latent whitening statistics (JEN-1 Algorithm 1)",
                          description="Encode training audio with a trained autoencoder and store the whitening "
                                      "statistics as whitening.safetensors beside its weights.")
    wh.add_argument("--ae", required=True, help="autoencoder run folder (checkpoint.pt) or exported folder")
    wh.add_argument("--data", required=True, help="folder of training renders")
    wh.add_argument("--k", type=int, default=None, help="dimensions kept (default: the config's whitened_dim)")
    wh.add_argument("--config", default="tiny", help="configuration giving the default k")
    wh.add_argument("--seconds", type=float, default=10.0, help="chunk length encoded at once")
    wh.add_argument("--max-files", type=int, default=0, help="use at most N files (0 = all)")
    wh.add_argument("--threads", type=int, default=2)
    wh.set_defaults(func=_train_whitening)


def _resolutions(text: str) -> tuple[tuple[int, int], ...]:
    """"512:128,2048:512" -> ((512, 128), (2048, 512)); each hop in 1..n_fft."""
    try:
        pairs = tuple((int(a), int(b)) for a, b in (part.split(":") for part in text.split(",")))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N_FFT:HOP[,N_FFT:HOP...], got {text!r}") from None
    if not pairs or any(n < 16 or not 1 <= h <= n for n, h in pairs):
        raise argparse.ArgumentTypeError(f"each pair needs n_fft >= 16 and 1 <= hop <= n_fft, got {text!r}")
    return pairs


def _train_autoencoder(args: argparse.Namespace) -> int:
    from engine.train.autoencoder import AutoencoderTrainer, TrainOptions, export

    opts = TrainOptions(data=args.data, out=args.out, config=args.config, steps=args.steps, batch=args.batch,
                        seconds=args.seconds, lr=args.lr, decay_steps=args.decay_steps, lr_min=args.lr_min,
                        device=args.device, threads=args.threads, seed=args.seed,
                        ema_decay=args.ema_decay, wave_weight=args.wave_weight, ckpt_minutes=args.ckpt_minutes,
                        eval_minutes=args.eval_minutes, eval_clips=args.eval_clips, heldout=args.heldout,
                        resume=args.resume, init_from=args.init_from,
                        complex_weight=args.complex_weight, if_weight=args.if_weight, freeze_encoder=args.freeze_encoder,
                        tonal_head=True if args.tonal_head else None, lowband_fft=args.lowband_fft,
                        latent_smooth=args.latent_smooth,
                        **({"stft_resolutions": args.stft_resolutions} if args.stft_resolutions else {}))
    result = AutoencoderTrainer(opts).run()
    print("final:", " ".join(f"{k}={v:.4g}" for k, v in sorted(result.items())))
    if args.export:
        for path in export(args.out, args.export):
            print(path)
    return 0


def _train_whitening(args: argparse.Namespace) -> int:
    from engine.train.whitening_stats import compute_whitening

    path = compute_whitening(args.ae, args.data, k=args.k, config=args.config, seconds=args.seconds,
                             max_files=args.max_files, threads=args.threads)
    print(path)
    return 0
