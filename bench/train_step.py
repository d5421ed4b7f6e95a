"""Seconds per diffusion training step: Stemforge's trainer next to a plain reference 1D U-Net, in one process.

    OMP_NUM_THREADS=2 .venv/bin/python bench/train_step.py [--steps 6] [--batch 8] [--seconds 4] [--threads 2]
                                                           [--config tiny] [--profile]

Our side is the real ``DiffusionTrainer.train_step`` (latent crops, JEN-1/Composer task batch, MiniLM text through
the trainer's TextCache, one U-Net forward per mode, masked loss, backward, clipping + AdamW + LR schedule, EMA) on
synthetic whitened latents with the studio captions (``data/studio_v1/train/metadata.jsonl`` when present). The
reference is the plain conv U-Net of ``../shared/notes/machine-facts.md`` (channels 96/192/384, 321 input channels,
GroupNorm residual blocks, no attention, no text) trained with the same AdamW and EMA at the same batch and length.

The two alternate step by step, so the ratio holds on a loaded machine where absolute times do not. Printed: seconds
per phase (median over steps) for both, the totals and their ratio, and the text-cache misses. ``--profile`` adds a
torch.profiler table of one of our steps. ``OMP_WAIT_POLICY`` defaults to PASSIVE here exactly as the trainer sets it
(see engine/train/diffusion.py); ``--libgomp-default`` leaves it unset, so waiting OpenMP threads spin as they did
before that fix (on a loaded host both models then slow down several times, ours the most).
"""

from __future__ import annotations

import os
import sys

if "--libgomp-default" not in sys.argv:  # before torch loads libgomp; the same default as the trainer
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
WAIT_POLICY = os.environ.get("OMP_WAIT_POLICY", "unset (libgomp default: spin)")  # what libgomp will read

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.config import HOP, SAMPLE_RATE, get_config
from engine.train.common import EMA

PHASES = ("data", "text", "forward", "backward", "optimizer", "ema")


# ---- the reference: a plain 1D U-Net of the machine-facts shape ---------------------------------------------
class RefBlock(nn.Module):
    """GroupNorm -> SiLU -> conv3, time bias, GroupNorm -> SiLU -> conv3, residual: (B, C_in, F) -> (B, C_out, F)."""

    def __init__(self, cin: int, cout: int, temb: int) -> None:
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(8, cin), nn.Conv1d(cin, cout, 3, padding=1)
        self.time = nn.Linear(temb, cout)
        self.norm2, self.conv2 = nn.GroupNorm(8, cout), nn.Conv1d(cout, cout, 3, padding=1)
        self.skip = nn.Conv1d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x))) + self.time(emb)[:, :, None]
        return self.conv2(F.silu(self.norm2(h))) + self.skip(x)


class RefUNet1d(nn.Module):
    """Plain 1D U-Net: one block per level down, mid two, one per level up with skips; ~6.1M parameters."""

    def __init__(self, cin: int = 321, cout: int = 120, channels: tuple[int, ...] = (96, 192, 384),
                 temb: int = 256) -> None:
        super().__init__()
        self.temb = nn.Sequential(nn.Linear(128, temb), nn.SiLU(), nn.Linear(temb, temb))
        self.inc = nn.Conv1d(cin, channels[0], 3, padding=1)
        self.down, self.downsample, prev = nn.ModuleList(), nn.ModuleList(), channels[0]
        for i, c in enumerate(channels):
            self.down.append(RefBlock(prev, c, temb))
            if i < len(channels) - 1:
                self.downsample.append(nn.Conv1d(c, c, 3, stride=2, padding=1))
            prev = c
        self.mid = nn.ModuleList([RefBlock(prev, prev, temb), RefBlock(prev, prev, temb)])
        self.up, self.upsample = nn.ModuleList(), nn.ModuleList()
        for i in reversed(range(len(channels))):
            self.up.append(RefBlock(2 * channels[i], channels[i], temb))
            if i > 0:
                self.upsample.append(nn.Conv1d(channels[i], channels[i - 1], 3, padding=1))
        self.out_norm, self.out = nn.GroupNorm(8, channels[0]), nn.Conv1d(channels[0], cout, 3, padding=1)

    def forward(self, x: Tensor, t: Tensor) -> Tensor:  # x (B, cin, F), t (B,) -> (B, cout, F)
        freqs = torch.exp(-9.21 * torch.arange(64, dtype=torch.float32) / 64)
        emb = self.temb(torch.cat([torch.cos(t[:, None] * freqs), torch.sin(t[:, None] * freqs)], dim=1))
        h, skips = self.inc(x), []
        for i, block in enumerate(self.down):
            h = block(h, emb)
            skips.append(h)
            if i < len(self.downsample):
                h = self.downsample[i](h)
        for block in self.mid:
            h = block(h, emb)
        for i, block in enumerate(self.up):
            h = block(torch.cat([h, skips.pop()], dim=1), emb)
            if i < len(self.upsample):
                h = self.upsample[i](torch.repeat_interleave(h, 2, dim=-1))
        return self.out(F.silu(self.out_norm(h)))


class RefTrainer:
    """The reference's training step with the same phases, AdamW settings, clipping and EMA as ours."""

    def __init__(self, batch: int, frames: int, seed: int = 0) -> None:
        torch.manual_seed(seed)
        self.net, self.batch, self.frames = RefUNet1d(), batch, frames
        self.opt = torch.optim.AdamW(self.net.parameters(), lr=2e-4, betas=(0.9, 0.95), weight_decay=0.1)
        self.ema = EMA(self.net, decay=0.999)
        self.gen = torch.Generator().manual_seed(seed)

    def train_step(self, timings: dict[str, float]) -> None:
        t0 = time.perf_counter()
        x = torch.randn(self.batch, 321, self.frames, generator=self.gen)
        eps = torch.randn(self.batch, 120, self.frames, generator=self.gen)
        t = torch.randint(1, 1000, (self.batch,), generator=self.gen).float()
        t1 = time.perf_counter()
        loss = F.mse_loss(self.net(x, t), eps)
        t2 = time.perf_counter()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        t3 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(self.net.parameters(), 1.0)
        self.opt.step()
        t4 = time.perf_counter()
        self.ema.update(self.net)
        t5 = time.perf_counter()
        for name, dt in zip(("data", "forward", "backward", "optimizer", "ema"), (t1 - t0, t2 - t1, t3 - t2, t4 - t3,
                                                                                    t5 - t4)):
            timings[name] = timings.get(name, 0.0) + dt


# ---- ours ---------------------------------------------------------------------------------------------------------
def captions(n: int) -> list[str]:
    meta = ROOT / "data" / "studio_v1" / "train" / "metadata.jsonl"
    if meta.is_file():
        caps = [json.loads(line)["caption"] for line in meta.read_text().splitlines() if line.strip()]
        if caps:
            return [caps[i % len(caps)] for i in range(n)]
    return [f"groovy funk track number {i} with a slap bass line ({90 + i % 50} BPM, E minor)" for i in range(n)]


def make_trainer(config: str, batch: int, seconds: float, items: int, out: str):
    from engine.model import StemforgeModel
    from engine.train.diffusion import DiffusionTrainer, DiffusionTrainOptions, LatentSet

    cfg = get_config(config)
    model = StemforgeModel.from_config(cfg, seed=0)
    frames_item = int(round(20.0 * SAMPLE_RATE / HOP))  # 20 s items, random crops
    g = torch.Generator().manual_seed(1)
    z = [torch.randn(cfg.num_stems, cfg.whitened_dim, frames_item, generator=g) for _ in range(items)]
    latents = LatentSet(z, torch.ones(items, cfg.num_stems, dtype=torch.bool), captions(items),
                        [f"i{i}" for i in range(items)])
    opts = DiffusionTrainOptions(out=out, config=cfg, steps=10_000, batch=batch, seconds=seconds, device="cpu",
                                 threads=0, ckpt_minutes=1e9, log_every=10**9)
    return DiffusionTrainer(model, latents, opts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=6, help="timed steps per model (after --warmup)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--config", default="tiny")
    ap.add_argument("--items", type=int, default=64, help="synthetic corpus items (distinct captions)")
    ap.add_argument("--profile", action="store_true", help="print a torch.profiler table of one of our steps")
    ap.add_argument("--libgomp-default", action="store_true",
                    help="leave OMP_WAIT_POLICY unset (spinning OpenMP waits, the trainer's old behaviour)")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        ours = make_trainer(args.config, args.batch, args.seconds, args.items, tmp)
        ours.model.text_encoder  # load MiniLM outside the timed steps
        ref = RefTrainer(args.batch, ours.frames)
        n_ours = sum(p.numel() for p in ours.unet.parameters()) / 1e6
        n_ref = sum(p.numel() for p in ref.net.parameters()) / 1e6
        for _ in range(args.warmup):
            ours.train_step({})
            ref.train_step({})
        misses0 = ours.text.misses
        per_step: dict[str, list[dict[str, float]]] = {"ours": [], "ref": []}
        for _ in range(args.steps):
            for name, trainer in (("ours", ours), ("ref", ref)):
                timings: dict[str, float] = {}
                trainer.train_step(timings)
                per_step[name].append(timings)
        misses = ours.text.misses - misses0
        if args.profile:
            from torch.profiler import ProfilerActivity, profile

            with profile(activities=[ProfilerActivity.CPU]) as prof:
                ours.train_step()
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))

    def med(name: str, phase: str | None) -> float:
        rows = per_step[name]
        return statistics.median(sum(r.values()) if phase is None else r.get(phase, 0.0) for r in rows)

    print(f"threads {torch.get_num_threads()}, OMP_WAIT_POLICY {WAIT_POLICY}, "
          f"load {load0:.1f} -> {os.getloadavg()[0]:.1f}; batch {args.batch} x {ours.frames} frames "
          f"({args.seconds:g} s), median of {args.steps} steps after {args.warmup} warm-up")
    print(f"{'phase':<12}{'ours (' + args.config + f' {n_ours:.1f}M)':>22}{f'reference ({n_ref:.1f}M)':>20}")
    for phase in PHASES:
        print(f"{phase:<12}{med('ours', phase):>22.3f}{med('ref', phase):>20.3f}")
    total_ours, total_ref = med("ours", None), med("ref", None)
    print(f"{'s/step':<12}{total_ours:>22.3f}{total_ref:>20.3f}")
    print(f"ratio ours/reference: {total_ours / total_ref:.2f}  (text-cache misses {misses / args.steps:.1f} a step)")


if __name__ == "__main__":
    main()
