"""Diffusion training batches: JEN-1's multi-task mix combined with JEN-1 Composer's curriculum.

Everything here is pure and deterministic given a ``torch.Generator``; no model is touched.

**Tasks (JEN-1 section 4.3).** Each batch item gets one of three tasks with probability 1/3 each:

- ``generate``: text-guided generation, bidirectional or unidirectional (1/2 each, JEN-1 trains both modes). The
  in-context channels of the generated stems hold a full-size mask and an empty (zero) masked latent.
- ``inpaint``: bidirectional; one contiguous region covering a uniform 20-80% of the frames is masked.
- ``continue``: unidirectional (causal); a right-side region covering a uniform 20-80% of the frames is masked.

**Curriculum (Composer section 4.3).** Stage ``s`` in ``1..k``: ``s`` stems are not given (generated), ``k - s`` are
given clean (``t = 0``). The stage is drawn from :meth:`Curriculum.probabilities`, a linear interpolation in the
training progress ``u = step / total`` between ``p_start ∝ 2^-(s-1)`` (mostly stage 1) and ``p_end ∝ s`` (mostly the
hardest stage, stage 1 still 1/(1+..+k))::

    p_s(u) = (1 - u) * p_start[s] + u * p_end[s]

``p_end`` stochastically dominates ``p_start``, so for every ``s`` the probability of a stage ``>= s`` never
decreases with ``u``; every stage keeps a non-zero probability throughout (easier stages stay in the mix).

**Timesteps (Composer section 5).** One stem ``i`` is chosen uniformly among the present stems and gets
``t_i ~ U{1..T-1}``. ``s - 1`` further stems (uniformly chosen) are "not given": each gets ``t_i`` (generated jointly)
or ``T`` (free: generated from the marginal, no conditioning signal) with probability 1/2; the remaining ``k - s`` get
``0`` (given clean). So every timestep is in ``{0, t_i, T}``, and stems with ``present=False`` are forced to ``T``.

**Joint share** (``joint_share``, default 0): with this probability an item skips the curriculum draw and trains
full joint generation: stage ``k``, every present stem at ``t_i``. Under the schedule above that configuration
(what a prompt-only "generate all stems" request samples) is rare: stage ``k`` times ``2^-(k-1)``, about 1-5% of
items for ``k = 4``; a small model trained on it alone learns to lean on given stems and meets an all-noisy input
at inference only out of distribution. The default model's continued training raises it (docs/MODEL_CARD.md).

**In-context channels** per stem (JEN-1's masked-audio latent + mask; mask 1 = frames to produce):
generated stems (``t = t_i``): mask = the task's frame mask, latent = ``x0 * (1 - mask)``;
free stems (``t = T``): mask 1 everywhere, latent 0; given stems (``t = 0``): mask 0, latent = ``x0``.

**Loss mask** ``(B, k, F)``: 1 on stems with ``t = t_i`` (the generated targets; free stems at ``T`` carry no
information, given ones no noise), restricted to the masked frames for inpainting/continuation, all frames for
generation. Missing stems never carry loss.

**Prompts**: ``build_prompt(caption, task_prefix=task_prefix(generated, given, task))`` (the studio captions
already name tempo and key; the pipeline builds the same text); with probability
``cfg.diffusion.cfg_dropout`` the caption (with tempo and key) is dropped for classifier-free guidance, and with
probability ``cfg.diffusion.prefix_dropout`` the task prefix is dropped, independently.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import Tensor

from engine.config import ModelConfig
from engine.diffusion.context import in_context, unet_input
from engine.diffusion.schedule import NoiseSchedule
from protocol.errors import InvalidArgument

TASKS = ("generate", "inpaint", "continue")
MASK_MIN, MASK_MAX = 0.2, 0.8  # JEN-1: mask ratios from 20% to 80%


# ---- curriculum ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Curriculum:
    """Composer's progressive curriculum over ``num_stems`` stages (see the module docstring)."""

    num_stems: int

    def _endpoints(self) -> tuple[Tensor, Tensor]:
        s = torch.arange(1, self.num_stems + 1, dtype=torch.float64)
        start = 0.5 ** (s - 1)
        end = s.clone()
        return start / start.sum(), end / end.sum()

    def probabilities(self, step: int, total: int) -> Tensor:
        """``(k,)`` float64 probabilities of stages ``1..k`` at ``step`` of ``total``."""
        if total <= 0:
            raise InvalidArgument(f"total steps must be positive, got {total}")
        u = min(max(step / total, 0.0), 1.0)
        start, end = self._endpoints()
        return (1.0 - u) * start + u * end

    def sample(self, n: int, step: int, total: int, generator: torch.Generator) -> Tensor:
        """``(n,)`` long stages in ``1..k``."""
        p = self.probabilities(step, total).float()
        return torch.multinomial(p, n, replacement=True, generator=generator) + 1


# ---- plan ----------------------------------------------------------------------------------------
@dataclass
class TaskPlan:
    """What each batch item trains on, independent of the latents themselves."""

    task: list[str]  # (B,) one of TASKS
    causal: Tensor  # (B,) bool: unidirectional mode
    stage: Tensor  # (B,) long in 1..k
    timesteps: Tensor  # (B, k) long in {0, t_i, T}
    anchor: Tensor  # (B,) long: the stem i that drew t_i
    frame_mask: Tensor  # (B, F) bool: True = frames the generated stems must produce
    prompts: list[str]  # (B,) full prompt text (caption / prefix possibly dropped)

    @property
    def generated(self) -> Tensor:
        """(B, k) bool: stems trained as generation targets (``0 < t < T``)."""
        t = self.timesteps
        return (t > 0) & (t == t.gather(1, self.anchor[:, None]))


def _rand(generator: torch.Generator, *shape: int) -> Tensor:
    return torch.rand(*shape, generator=generator)


def _randint(generator: torch.Generator, low: int, high: int) -> int:
    """Uniform integer in ``[low, high]`` (inclusive)."""
    return int(torch.randint(low, high + 1, (1,), generator=generator))


def _region_mask(task: str, num_frames: int, generator: torch.Generator) -> Tensor:
    """(F,) bool frame mask: all True for generation, a 20-80% span for inpainting/continuation."""
    mask = torch.zeros(num_frames, dtype=torch.bool)
    if task == "generate":
        mask[:] = True
        return mask
    ratio = MASK_MIN + (MASK_MAX - MASK_MIN) * float(_rand(generator, 1))
    length = min(num_frames, max(1, int(round(ratio * num_frames))))
    if task == "continue":
        mask[num_frames - length:] = True
    else:
        start = _randint(generator, 0, num_frames - length)
        mask[start:start + length] = True
    return mask


def _timesteps(present: Tensor, stage: int, T: int, generator: torch.Generator) -> tuple[Tensor, int]:
    """(k,) long timesteps for one item and the anchor stem index (see module docstring)."""
    k = present.numel()
    idx_present = torch.nonzero(present, as_tuple=False).flatten()
    anchor = int(idx_present[_randint(generator, 0, idx_present.numel() - 1)])
    t_i = _randint(generator, 1, T - 1)
    t = torch.zeros(k, dtype=torch.long)
    t[anchor] = t_i
    others = [j for j in range(k) if j != anchor]
    order = torch.randperm(len(others), generator=generator).tolist()
    not_given = [others[j] for j in order[: stage - 1]]
    for j in not_given:
        t[j] = t_i if float(_rand(generator, 1)) < 0.5 else T
    t[~present] = T  # missing stems cannot be given nor generated
    return t, anchor


def sample_plan(
    cfg: ModelConfig,
    present: Tensor,
    captions: Sequence[str],
    num_frames: int,
    step: int,
    total: int,
    generator: torch.Generator,
    *,
    make_prompt: Callable[[str | None, tuple[str, list[str], list[str]] | None], str],
    joint_share: float = 0.0,
) -> TaskPlan:
    """Draw tasks, stages, timesteps, frame masks and prompts for one batch.

    ``present``: (B, k) bool. ``captions``: B captions. ``make_prompt(caption, (task, generated, given)) -> str``
    builds the text (the trainer passes ``build_prompt(caption, task_prefix=task_prefix(generated, given, task))``,
    exactly what the inference pipeline sends); ``None`` stands for a dropped caption / prefix.
    ``joint_share``: probability of full joint generation for an item (module docstring).
    Raises :class:`InvalidArgument` for an item with no present stem or a ``joint_share`` outside [0, 1].
    """
    B, k = present.shape
    if k != cfg.num_stems:
        raise InvalidArgument(f"present has {k} stems, the config has {cfg.num_stems}")
    if len(captions) != B:
        raise InvalidArgument(f"{len(captions)} captions for a batch of {B}")
    if num_frames < 2:
        raise InvalidArgument(f"need at least 2 latent frames, got {num_frames}")
    if not bool(present.any(dim=1).all()):
        raise InvalidArgument("every training item needs at least one present stem")
    if not 0.0 <= float(joint_share) <= 1.0:
        raise InvalidArgument(f"joint_share must be in [0, 1], got {joint_share}")
    T = int(cfg.diffusion.num_train_timesteps)
    stages = Curriculum(k).sample(B, step, total, generator)  # (B,)
    joint = torch.zeros(B, dtype=torch.bool)
    if joint_share > 0:  # drawn only when asked, so joint_share=0 keeps the generator stream (and old runs) as before
        joint = _rand(generator, B) < float(joint_share)
        stages = torch.where(joint, torch.full_like(stages, k), stages)
    tasks: list[str] = []
    causal = torch.zeros(B, dtype=torch.bool)
    timesteps = torch.zeros(B, k, dtype=torch.long)
    anchors = torch.zeros(B, dtype=torch.long)
    frame_mask = torch.zeros(B, num_frames, dtype=torch.bool)
    prompts: list[str] = []
    for b in range(B):
        task = TASKS[_randint(generator, 0, len(TASKS) - 1)]
        tasks.append(task)
        if task == "continue":
            causal[b] = True
        elif task == "generate":
            causal[b] = bool(_rand(generator, 1) < 0.5)
        frame_mask[b] = _region_mask(task, num_frames, generator)
        timesteps[b], anchors[b] = _timesteps(present[b].bool(), int(stages[b]), T, generator)
        if joint[b]:
            timesteps[b] = torch.where(present[b].bool(), timesteps[b, anchors[b]], torch.full_like(timesteps[b], T))
        t_i = timesteps[b, anchors[b]]
        names = [cfg.stems[j] for j in range(k) if timesteps[b, j] == t_i]
        given = [cfg.stems[j] for j in range(k) if timesteps[b, j] == 0]
        drop_caption = float(_rand(generator, 1)) < cfg.diffusion.cfg_dropout
        drop_prefix = float(_rand(generator, 1)) < cfg.diffusion.prefix_dropout
        prefix = None if drop_prefix else (task, names, given)
        prompts.append(make_prompt(None if drop_caption else captions[b], prefix))
    return TaskPlan(tasks, causal, stages, timesteps, anchors, frame_mask, prompts)


# ---- batch ---------------------------------------------------------------------------------------
@dataclass
class DiffusionBatch:
    """U-Net inputs and targets for one training step."""

    x: Tensor  # (B, k*D + k*(D+1), F): [noisy latents | per stem (masked latent, mask)]
    t: Tensor  # (B, k) float timesteps
    eps: Tensor  # (B, k*D, F) the noise drawn
    target: Tensor  # (B, k*D, F) what the network is trained to output (schedule.target: eps, or v)
    loss_mask: Tensor  # (B, k, F) float, 1 where the loss counts
    causal: Tensor  # (B,) bool
    prompts: list[str]
    plan: TaskPlan
    grid_offset: Tensor | None = None  # (B,) float64 seconds from a downbeat to frame 0 (the beat clock); None = 0
    chords: Tensor | None = None  # (B, 24, F) chord tracks (engine.text.chords); None = none

    def mode_groups(self) -> list[tuple[bool, Tensor]]:
        """``[(causal, item indices)]`` for each mode present: one U-Net forward per mode."""
        out = []
        for mode in (False, True):
            idx = torch.nonzero(self.causal == mode, as_tuple=False).flatten()
            if idx.numel():
                out.append((mode, idx))
        return out


def build_batch(plan: TaskPlan, z0: Tensor, schedule: NoiseSchedule, generator: torch.Generator) -> DiffusionBatch:
    """Noise the clean whitened latents ``z0`` (B, k, D, F) following ``plan``.

    Noising is ``schedule.add_noise`` per stem (``abar_0 = 1``: stems at ``t = 0`` pass exactly clean); the
    in-context channels are laid out by :mod:`engine.diffusion.context`, the same code inference uses.
    """
    B, k, D, F = z0.shape
    if plan.timesteps.shape != (B, k) or plan.frame_mask.shape != (B, F):
        raise InvalidArgument(
            f"plan is for timesteps {tuple(plan.timesteps.shape)} / frames {tuple(plan.frame_mask.shape)}, "
            f"latents are {tuple(z0.shape)}")
    device, dtype = z0.device, z0.dtype
    t = plan.timesteps.to(device)  # (B, k)
    eps = torch.randn(B, k, D, F, generator=generator).to(device, dtype)
    noisy = schedule.add_noise(z0, eps, plan.timesteps)  # (B, k, D, F)
    noisy = torch.where((t == 0)[:, :, None, None], z0, noisy)

    generated = plan.generated.to(device)  # (B, k)
    free = (t == schedule.T) & ~generated
    fmask = plan.frame_mask.to(device, dtype)[:, None, :].expand(B, k, F)  # (B, k, F)
    ctx_mask = torch.where(generated[:, :, None], fmask, torch.zeros_like(fmask))
    ctx_mask = torch.where(free[:, :, None], torch.ones_like(fmask), ctx_mask)  # (B, k, F)
    x = unet_input(noisy, in_context(z0, ctx_mask))  # (B, k*D + k*(D+1), F)

    loss_mask = torch.where(generated[:, :, None], fmask, torch.zeros_like(fmask))
    target = schedule.target(z0, eps, plan.timesteps).reshape(B, k * D, F)
    return DiffusionBatch(x=x, t=t.to(dtype), eps=eps.reshape(B, k * D, F), target=target, loss_mask=loss_mask,
                          causal=plan.causal.clone(), prompts=list(plan.prompts), plan=plan)


def masked_mse(pred: Tensor, target: Tensor, loss_mask: Tensor, num_stems: int) -> Tensor:
    """Mean squared error over the frames and stems where ``loss_mask`` (B, k, F) is 1.

    ``pred``/``target``: (B, k*D, F). Returns a scalar (0 with a zero gradient when the mask is empty).
    """
    B, C, F = pred.shape
    D = C // num_stems
    err = (pred - target).reshape(B, num_stems, D, F).pow(2)  # (B, k, D, F)
    w = loss_mask[:, :, None, :]
    denom = w.sum() * D
    return (err * w).sum() / denom.clamp_min(1.0)
