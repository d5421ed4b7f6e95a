"""``stemforge train diffusion``: train the U-Net on frozen autoencoder latents (engine/train/diffusion.py)."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any, groups: dict[str, argparse._SubParsersAction]) -> None:
    p = groups["train"].add_parser(
        "diffusion", help="train the diffusion U-Net (JEN-1 multi-task + Composer curriculum)",
        description="Encode the corpus once with the frozen autoencoder, then train the omnidirectional U-Net.")
    p.add_argument("--data", required=True, help="training corpus: studio render folder or stem folders")
    p.add_argument("--ae", required=True, metavar="AE_CHECKPOINT_OR_MODEL_DIR",
                   help="autoencoder run folder (with whitening), autoencoder export, or model checkpoint directory")
    p.add_argument("--config", default="tiny", help="model configuration of the U-Net (default tiny)")
    p.add_argument("--steps", type=int, default=10_000)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seconds", type=float, default=None, help="crop length (default: the config's segment)")
    p.add_argument("--lr", type=float, default=2e-4, help="peak learning rate (linear warm-up, linear decay)")
    p.add_argument("--warmup", type=int, default=200, help="warm-up steps")
    p.add_argument("--chord-dropout", type=float, default=0.2,
                   help="share of captioned items trained without their chord track (models with chords)")
    p.add_argument("--bass-root-weight", type=float, default=0.0,
                   help="weight of the bass-root loss: minus the log share of the decoded predicted bass on the "
                        "given chords' roots (engine/train/bass_root.py; default 0: off)")
    p.add_argument("--bass-root-items", type=int, default=4,
                   help="items a step whose predicted bass is decoded for that loss (the noisiest; default 4)")
    p.add_argument("--bass-root-pool", choices=("frame", "segment"), default="frame",
                   help="the bass-root loss per 25 ms STFT frame (run 11) or on each chord segment's summed power, "
                        "where a passing tone costs little (default frame)")
    p.add_argument("--tonal-weight", type=float, default=0.0,
                   help="weight of the chord-tone loss: the decoded predicted instrument's power on the sounding "
                        "chord's tones and the melody's on the crop's chord tones, per chord segment (default 0: off)")
    p.add_argument("--joint-share", type=float, default=0.0,
                   help="probability that an item trains full joint generation of every stem (default 0: the "
                        "Composer curriculum alone)")
    p.add_argument("--ema-decay", type=float, default=0.999)
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    p.add_argument("--threads", type=int, default=2, help="CPU threads for torch (0 = torch default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ckpt-minutes", type=float, default=10.0, help="checkpoint every N minutes")
    p.add_argument("--out", default="runs/diffusion_tiny", metavar="RUN_DIR",
                   help="run folder (checkpoint.pt, latent cache, train.log)")
    p.add_argument("--resume", action="store_true", help="continue from RUN_DIR/checkpoint.pt")
    p.add_argument("--init-unet", action="store_true",
                   help="start the U-Net from the --ae model checkpoint's U-Net (continue a shipped partial run)")
    p.add_argument("--init-unet-from", default=None, metavar="MODEL_DIR",
                   help="start the U-Net from this model checkpoint's U-Net while --ae gives a new autoencoder")
    p.add_argument("--export", default=None, metavar="DIR", help="write the trained model checkpoint to DIR")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from engine.train.diffusion import DiffusionTrainOptions, train_diffusion

    opts = DiffusionTrainOptions(
        data=args.data, ae=args.ae, out=args.out, config=args.config, steps=args.steps, batch=args.batch,
        seconds=args.seconds, lr=args.lr, warmup=args.warmup, joint_share=args.joint_share,
        chord_dropout=args.chord_dropout, bass_root_weight=args.bass_root_weight,
        bass_root_items=args.bass_root_items, bass_root_pool=args.bass_root_pool, tonal_weight=args.tonal_weight,
        ema_decay=args.ema_decay, device=args.device,
        threads=args.threads, seed=args.seed, ckpt_minutes=args.ckpt_minutes, resume=args.resume,
        export=args.export, init_unet=args.init_unet,
        init_unet_from=args.init_unet_from)
    summary, digest = train_diffusion(opts)
    print("final:", " ".join(f"{k}={v:.4g}" for k, v in sorted(summary.items())))
    if digest:
        print(f"exported {args.export} (hash {digest[:12]}, trained)")
    return 0
