"""Denoising error of a model on real latents, by noise level: one stem generated with the others given clean
(Composer stage 1) against all stems generated jointly (what a prompt-only request samples).

    python scripts/denoise_probe.py MODEL_DIR CORPUS_DIR [N_ITEMS]

For each t it prints the epsilon MSE of the anchor stem (the network output turned into epsilon by the model's
schedule, so epsilon and v models compare) and the data-prediction MSE it implies, ``eps_mse * (sigma/alpha)^2``,
next to the MSE of predicting zero (the whitened latents' variance): a data prediction above that line is worse
than knowing nothing. Crops: the first 64 latent frames of the first N items (default 32); noise seed 0.
"""

from __future__ import annotations

import sys

import torch

from engine.diffusion.schedule import NoiseSchedule
from engine.model import StemforgeModel
from engine.text.attributes import attribute_tensor
from engine.train.diffusion import make_prompt_fn, open_corpus
from engine.train.tasks import TaskPlan, build_batch

FRAMES = 64
LEVELS = (300, 600, 850, 950)


def main(model_dir: str, corpus_dir: str, n: int = 32) -> None:
    torch.set_num_threads(1)
    model = StemforgeModel.load(model_dir)
    model.eval()
    cfg = model.config
    k = cfg.num_stems
    corpus = open_corpus(corpus_dir, cfg.stems)
    zs, caps = [], []
    with torch.inference_mode():
        for i in range(n):
            audio, _ = corpus.load(i)
            zs.append(model.encode_stems(torch.from_numpy(audio)[None])[0, :, :, :FRAMES].float())
            caps.append(corpus.items[i].caption)
    z0 = torch.stack(zs)  # (n, k, D, F)
    schedule = NoiseSchedule.from_config(cfg)
    make_prompt = make_prompt_fn(cfg.stems)
    anchor = torch.arange(n) % k
    print(f"{model_dir}: prediction={schedule.prediction}, {n} items; zero-predictor data MSE "
          f"{z0.pow(2).mean().item():.3f}")
    for t_i in LEVELS:
        for name in ("stage1", "joint"):
            ts = torch.full((n, k), t_i, dtype=torch.long) if name == "joint" else torch.zeros(n, k, dtype=torch.long)
            ts[torch.arange(n), anchor] = t_i
            prompts = []
            for b in range(n):
                gen = [cfg.stems[j] for j in range(k) if ts[b, j] == t_i]
                given = [cfg.stems[j] for j in range(k) if ts[b, j] == 0]
                prompts.append(make_prompt(caps[b], ("generate", gen, given)))
            plan = TaskPlan(["generate"] * n, torch.zeros(n, dtype=torch.bool), torch.ones(n, dtype=torch.long),
                            ts, anchor, torch.ones(n, FRAMES, dtype=torch.bool), prompts)
            batch = build_batch(plan, z0, schedule, torch.Generator().manual_seed(0))
            with torch.inference_mode():
                states, mask = model.encode_text(prompts)
                out = model.unet(batch.x, batch.t, states, mask, attrs=attribute_tensor(prompts)).float()
                eps = schedule.eps_from_output(out, batch.x[:, : batch.eps.shape[1]], batch.t)
            err = (eps - batch.eps).reshape(n, k, -1, FRAMES).pow(2).mean(dim=(2, 3))[torch.arange(n), anchor].mean()
            ratio = float(schedule.sigma(t_i) / schedule.alpha(t_i)) ** 2
            print(f"t={t_i:4d} {name:6s} eps MSE {err.item():.4f}  data MSE {err.item() * ratio:.3f}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 32)
