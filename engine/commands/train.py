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


def _train_autoencoder(args: argparse.Namespace) -> int:
    from engine.train.autoencoder import AutoencoderTrainer, TrainOptions, export

    opts = TrainOptions(data=args.data, out=args.out, config=args.config, steps=args.steps, batch=args.batch,
                        seconds=args.seconds, lr=args.lr, decay_steps=args.decay_steps, lr_min=args.lr_min, device=args.device, threads=args.threads, seed=args.seed,
                        ema_decay=args.ema_decay, wave_weight=args.wave_weight, ckpt_minutes=args.ckpt_minutes,
                        eval_minutes=args.eval_minutes, eval_clips=args.eval_clips, heldout=args.heldout,
                        resume=args.resume)
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
