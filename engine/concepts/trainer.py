"""The shared concept-training loop: the diffusion step of :mod:`engine.train.diffusion` on concept latents.

Every method runs the same step (JEN-1's multi-task mix and Composer's per-stem timesteps from
:mod:`engine.train.tasks`, masked MSE to the epsilon or v target from :func:`engine.train.diffusion.batch_loss`)
on the concepts' clips, with neutral captions from :func:`engine.concepts.data.make_caption` and no caption dropout (the concept tokens must
be seen in every step). The text encoder runs with gradients when the identifier tokens train.
What trains is the method's business (:mod:`engine.concepts.pivotal`, :mod:`engine.concepts.textual_inversion`);
this module gives them the batches, the loss and the bookkeeping.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from engine.concepts.data import make_caption
from engine.config import HOP, SAMPLE_RATE
from engine.diffusion.schedule import NoiseSchedule
from engine.train.diffusion import LatentSet, batch_loss, make_prompt_fn
from engine.train.tasks import build_batch, sample_plan
from protocol.errors import InvalidArgument, ModelError

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int, str], None]  # (step, total, stage); may raise JobCancelled

DEFAULT_STEPS = {"pivotal": 300, "textual-inversion": 300, "cross-kv": 300, "unet-all": 300}
UNET_LR, TOKEN_LR = 1e-4, 1e-3  # 10 x DreamStyler sec. 5.2 (1e-5 / 1e-4 for 1,500 steps of batch 32): docs/concepts.md
DEFAULT_TOKENS = {"pivotal": 3, "textual-inversion": 10, "cross-kv": 3, "unet-all": 3}


@dataclass
class ConceptOptions:
    """Hyper-parameters. Pivotal defaults follow DreamStyler sec. 5.2 (AdamW betas 0.9 / 0.95, decoupled weight
    decay 0.1, clipping 1.0, 3 tokens, P = 5%) except the learning rates: the paper's 1e-5 (U-Net) and 1e-4
    (tokens) are for 1,500 steps of batch 32; at this default of 300 steps of batch 4 they moved generations *away*
    from the reference on the trained tiny model, and ten times those rates (:data:`UNET_LR`, :data:`TOKEN_LR`)
    moved them toward it (docs/concepts.md, "Learning rates"); textual-inversion defaults follow
    Thomé et al. sec. 2 (10 tokens, AdamW betas 0.9 / 0.999, 10-step warm-up then x0.99 per step, L1 decay 0.01,
    EMA 0.95 of the embeddings, orthogonality regulariser)."""

    method: str = "pivotal"
    steps: int | None = None  # training steps (pivotal: after the mask steps); default DEFAULT_STEPS[method]
    mask_steps: int | None = None  # pivotal mask learning; default max(1, steps // 4)
    batch: int = 4
    seconds: float | None = None  # clip / crop length; default: the model's segment_seconds
    num_tokens: int | None = None  # per concept; default DEFAULT_TOKENS[method]
    pivotal_percent: float = 5.0
    unet_lr: float = UNET_LR
    token_lr: float = TOKEN_LR
    mask_lr: float = 1e-3  # not in the paper; only the ranking of |M - M*| matters
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    ti_lr: float = 5e-3
    ti_betas: tuple[float, float] = (0.9, 0.999)
    ti_l1_decay: float = 0.01
    ti_ema: float = 0.95
    ti_orthogonality: float = 0.1  # weight of mean squared cosine to sampled vocabulary rows
    ti_reg_samples: int = 256
    stem: str = "melody"
    description: str = ""
    seed: int = 0
    min_seconds: float | None = None  # default engine.concepts.data.MIN_REFERENCE_SECONDS

    def resolved(self) -> "ConceptOptions":
        from engine.concepts.store import METHODS

        if self.method not in METHODS:
            raise InvalidArgument(f"unknown concept method {self.method!r}; known: {list(METHODS)}")
        steps = self.steps if self.steps is not None else DEFAULT_STEPS[self.method]
        if steps < 1 or self.batch < 1:
            raise InvalidArgument(f"steps and batch must be >= 1, got {steps} / {self.batch}")
        if not 0 < self.pivotal_percent <= 100:
            raise InvalidArgument(f"pivotal percent must be in (0, 100], got {self.pivotal_percent}")
        mask_steps = self.mask_steps if self.mask_steps is not None else max(1, steps // 4)
        tokens = self.num_tokens if self.num_tokens is not None else DEFAULT_TOKENS[self.method]
        if tokens < 1 or mask_steps < 1:
            raise InvalidArgument("num_tokens and mask_steps must be >= 1")
        return dataclasses.replace(self, steps=steps, mask_steps=mask_steps, num_tokens=tokens)


@dataclass
class ConceptData:
    name: str
    tokens: list[str]
    latents: LatentSet
    description: str = ""
    reference_sha256: str = ""
    reference_seconds: float = 0.0


class ScatterValues(nn.Module):
    """Parametrization ``W -> W`` with the flat entries ``index`` replaced by the trainable ``values``."""

    def __init__(self, weight: Tensor, index: Tensor) -> None:
        super().__init__()
        self.register_buffer("index", index.clone())
        self.values = nn.Parameter(weight.detach().reshape(-1)[index].clone().float())  # fp32 even on a bf16 U-Net

    def forward(self, w: Tensor) -> Tensor:
        return w.reshape(-1).index_put((self.index,), self.values.to(w.dtype)).view_as(w)


class MultiplyMask(nn.Module):
    """Parametrization ``W -> W * M`` with a trainable mask ``M`` initialised to ones (DreamStyler eq. 8)."""

    def __init__(self, weight: Tensor) -> None:
        super().__init__()
        self.mask = nn.Parameter(torch.ones_like(weight, dtype=torch.float32))  # fp32 even on a bf16 U-Net

    def forward(self, w: Tensor) -> Tensor:
        return (w.float() * self.mask).to(w.dtype)


def attention_linears(unet: nn.Module, kind: str, proj: str) -> dict[str, nn.Linear]:
    """``{"<module path>.weight": Linear}`` of every ``self_attn`` / ``cross_attn`` ``to_k`` / ``to_v``."""
    out = {}
    for name, module in unet.named_modules():
        if name.endswith(f"{kind}.{proj}") and isinstance(module, nn.Linear):
            out[f"{name}.weight"] = module
    return out


def remove_parametrizations(linears: dict[str, nn.Linear]) -> None:
    """Drop parametrizations, restoring each original weight exactly."""
    for lin in linears.values():
        if parametrize.is_parametrized(lin, "weight"):
            parametrize.remove_parametrizations(lin, "weight", leave_parametrized=False)


class ConceptRun:
    """Batches, loss and progress over the merged data of one or more concepts."""

    def __init__(self, model: Any, data: list[ConceptData], opts: ConceptOptions,
                 progress: ProgressFn | None = None) -> None:
        self.model = model
        self.opts = opts
        self.data = {d.name: d for d in data}
        cfg = model.config
        self.cfg = dataclasses.replace(cfg, diffusion=dataclasses.replace(cfg.diffusion, cfg_dropout=0.0,
                                                                          prefix_dropout=0.0))
        self.latents = LatentSet([z for d in data for z in d.latents.latents],
                                 torch.cat([d.latents.present for d in data]),
                                 [d.name for d in data for _ in d.latents.latents],
                                 [i for d in data for i in d.latents.ids])
        seconds = opts.seconds if opts.seconds is not None else cfg.segment_seconds
        self.frames = self.latents.crop_frames(int(round(seconds * SAMPLE_RATE / HOP)))
        self.schedule = NoiseSchedule.from_config(cfg)
        self.make_prompt = make_prompt_fn(tuple(cfg.stems))
        self.generator = torch.Generator().manual_seed(opts.seed)
        self.rng = random.Random(opts.seed)
        self.progress = progress
        self.step = 0
        self.total = 1
        self.losses: list[float] = []
        self.t0 = time.monotonic()

    @property
    def device(self) -> torch.device:
        return self.model.device

    def loss(self, text_grad: bool) -> Tensor:
        """One batch's masked epsilon MSE (the diffusion training step's loss)."""
        z0, present, names, _ = self.latents.sample(self.opts.batch, self.frames, self.generator)
        captions = [make_caption(self.data[n].tokens, self.opts.method, self.data[n].description, self.rng)
                    for n in names]
        plan = sample_plan(self.cfg, present, captions, self.frames, self.step, self.total, self.generator,
                           make_prompt=self.make_prompt)
        batch = build_batch(plan, z0, self.schedule, self.generator)  # no grid offset: references have no grid
        enc = self.model.text_encoder
        with torch.set_grad_enabled(text_grad):
            states, mask = enc.encode(batch.prompts)
        dev = self.device
        batch.x, batch.t, batch.eps, batch.target, batch.loss_mask = (v.to(dev) for v in
                                                        (batch.x, batch.t, batch.eps, batch.target, batch.loss_mask))
        return batch_loss(self.model.unet, batch, states.to(dev), mask.to(dev), self.cfg.num_stems)

    def tick(self, loss: float, stage: str) -> None:
        if not torch.isfinite(torch.tensor(loss)):
            raise ModelError(f"concept training loss became {loss} at step {self.step} ({stage})")
        self.losses.append(loss)
        self.step += 1
        if self.step % 25 == 0 or self.step == self.total:
            log.info("concept %s: %s step %d/%d loss %.4f (%.2f s/step)", "+".join(self.data), stage, self.step,
                     self.total, loss, (time.monotonic() - self.t0) / self.step)
        if self.progress is not None:
            self.progress(self.step, self.total, stage)


def freeze_unet(unet: nn.Module) -> None:
    for p in unet.parameters():
        p.requires_grad_(False)


@dataclass
class TokenTable:
    """The identifier-token rows being trained: ids in the text encoder's table and a gradient row mask."""

    ids: list[int]
    weight: nn.Parameter
    hook: Any = field(default=None)

    @classmethod
    def trainable(cls, encoder: Any, ids: list[int]) -> "TokenTable":
        for p in encoder.parameters():
            p.requires_grad_(False)
        weight = encoder.token_embeddings().weight
        weight.requires_grad_(True)
        keep = torch.zeros(weight.shape[0], 1, dtype=weight.dtype, device=weight.device)
        keep[ids] = 1.0
        hook = weight.register_hook(lambda g: g * keep)  # only the new rows get gradients
        return cls(ids=list(ids), weight=weight, hook=hook)

    def rows(self) -> Tensor:
        return self.weight.detach()[self.ids].clone().float()

    def close(self) -> None:
        if self.hook is not None:
            self.hook.remove()
            self.hook = None
        self.weight.requires_grad_(False)
