"""Textual inversion for text-to-music (Thomé et al., 2024, sec. 2), on the engine's diffusion U-Net.

Only the new identifier-token embeddings train (10 per concept by default); the U-Net and every other text-encoder
weight stay fixed (Gal et al.'s latent-diffusion objective, eq. 1). Following the paper:

- init: rows drawn from a Gaussian with the embedding table's per-dimension mean and standard deviation
  (:meth:`engine.text.base.TextEncoder.add_tokens`);
- the tokens are shuffled in every training caption (neutral templates, "A recording of a S*"), and at inference
  a random half of them is used (:func:`engine.concepts.tokens.expand_prompt`);
- AdamW, betas 0.9 / 0.999, a 10-step warm-up (``lr * 10^-(10 - t)``) then ``x 0.99`` per step, L1 weight decay
  0.01 applied decoupled to the new rows (``v -= lr * 0.01 * sign(v)``);
- a regulariser keeping the new embeddings orthogonal to existing ones: the mean squared cosine similarity between
  the new rows and ``ti_reg_samples`` vocabulary rows resampled every step, weighted by ``ti_orthogonality``;
- an exponential moving average (decay 0.95) of the embeddings; the averaged rows are what is stored.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from engine.concepts.trainer import ConceptData, ConceptOptions, ConceptRun, ProgressFn, TokenTable, freeze_unet

log = logging.getLogger(__name__)


def lr_factor(step: int) -> float:
    """Thomé et al. eq. 3 as a warm-up: 10^-(10 - t) for t < 10, then 0.99^(t - 10)."""
    return 10.0 ** -(10 - step) if step < 10 else 0.99 ** (step - 10)


def orthogonality_loss(new_rows: Tensor, vocabulary: Tensor, samples: int, generator: torch.Generator) -> Tensor:
    """Mean squared cosine similarity between ``new_rows`` (n, H) and ``samples`` random vocabulary rows
    (drawn without replacement; all rows when ``samples`` covers the table)."""
    if samples >= vocabulary.shape[0]:
        rows = vocabulary
    else:
        rows = vocabulary[torch.randperm(vocabulary.shape[0], generator=generator)[:samples].to(vocabulary.device)]
    cos = F.normalize(new_rows.float(), dim=-1) @ F.normalize(rows.float(), dim=-1).T
    return cos.pow(2).mean()


def train_textual_inversion(model: Any, data: list[ConceptData], opts: ConceptOptions, table: TokenTable,
                            progress: ProgressFn | None = None) -> tuple[Tensor, dict[str, Any]]:
    """Train the token rows in ``table``; returns (EMA rows (n, H), summary). The U-Net is untouched."""
    freeze_unet(model.unet)
    run = ConceptRun(model, data, opts, progress)
    run.total = opts.steps
    base_rows = model.text_encoder.base_vocab_size
    vocab = table.weight.detach()[:base_rows]
    opt = torch.optim.AdamW([table.weight], lr=opts.ti_lr, betas=opts.ti_betas, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)
    ema = table.rows()
    reg_gen = torch.Generator().manual_seed(opts.seed + 1)
    ids = torch.tensor(table.ids, device=table.weight.device)
    for _ in range(opts.steps):
        loss = run.loss(text_grad=True)
        reg = orthogonality_loss(table.weight[ids], vocab, opts.ti_reg_samples, reg_gen)
        total = loss + opts.ti_orthogonality * reg
        opt.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_([table.weight], opts.grad_clip)
        opt.step()
        with torch.no_grad():
            lr = sched.get_last_lr()[0]
            rows = table.weight[ids]
            table.weight[ids] = rows - lr * opts.ti_l1_decay * torch.sign(rows)
            ema.lerp_(table.weight[ids].float(), 1.0 - opts.ti_ema)
        sched.step()
        run.tick(float(loss.detach()), "training")
    summary = {"final_loss": run.losses[-1] if run.losses else None,
               "seconds_per_step": (time.monotonic() - run.t0) / max(1, len(run.losses)),
               "orthogonality": float(orthogonality_loss(ema, vocab, 4096, reg_gen))}
    return ema, summary
