"""JEN-1 DreamStyler: Pivotal Parameters Tuning (sec. 4.2, 4.3, Algorithm 1), and the paper's U-Net baselines.

1. **Mask** (eq. 8): every self-attention value projection ``W_V`` gets a trainable mask ``M`` of its shape,
   initialised to ones and multiplied into it; only the masks train (U-Net and identifier tokens fixed), for
   ``mask_steps`` steps of AdamW (betas 0.9 / 0.95, no weight decay).
2. **Selection**: ``Delta_M = |M - M*|`` with ``M*`` the initial ones; the top ``P``% (default 5%) of positions over
   all self-attention ``W_V`` together are the pivotal parameters. For several concepts the masks are learned per
   concept (each on its own data and tokens) and the selections merged by union (Algorithm 1, lines 1-6).
3. **Tuning** (eq. 9): the pivotal ``W_V`` entries (as a scattered parameter vector, so nothing else in ``W_V`` can
   move), every cross-attention ``W_K`` and ``W_V``, and the identifier tokens train jointly on the merged data:
   AdamW, betas 0.9 / 0.95, decoupled weight decay 0.1, clipping 1.0; lr 1e-4 for the U-Net and 1e-3 for the
   tokens by default, ten times the paper's 1e-5 / 1e-4, which are for 1,500 steps of batch 32 (see
   :class:`~engine.concepts.trainer.ConceptOptions`; ``--unet-lr 1e-5 --token-lr 1e-4`` gives the paper's).

Baselines of DreamStyler Table 1 share the code: ``cross-kv`` (Custom Diffusion: cross-attention K/V + tokens) and
``unet-all`` (all U-Net parameters, tokens fixed at their random init, as DreamBooth's rare identifier). The
tokens-only baseline is :mod:`engine.concepts.textual_inversion`.

Each function returns ``(U-Net deltas, token rows)`` and leaves the U-Net as it found it (parametrizations removed,
trained values read out and restored by the caller's :class:`~engine.concepts.apply.ConceptManager`).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import torch
from torch import Tensor
from torch.nn.utils import parametrize

from engine.concepts.trainer import (
    ConceptData,
    ConceptOptions,
    ConceptRun,
    MultiplyMask,
    ProgressFn,
    ScatterValues,
    TokenTable,
    attention_linears,
    freeze_unet,
    remove_parametrizations,
)
from protocol.errors import ModelError

log = logging.getLogger(__name__)

Deltas = dict[str, tuple[Tensor | None, Tensor]]


def learn_mask(run: ConceptRun, steps: int, lr: float) -> dict[str, Tensor]:
    """Train ones-initialised masks on every self-attention W_V (eq. 8); returns ``|M - M*|`` per weight."""
    unet = run.model.unet
    freeze_unet(unet)
    linears = attention_linears(unet, "self_attn", "to_v")
    masks: dict[str, MultiplyMask] = {}
    try:
        for name, lin in linears.items():
            masks[name] = MultiplyMask(lin.weight)
            parametrize.register_parametrization(lin, "weight", masks[name])
        opt = torch.optim.AdamW([m.mask for m in masks.values()], lr=lr, betas=run.opts.betas, weight_decay=0.0)
        for _ in range(steps):
            loss = run.loss(text_grad=False)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_([m.mask for m in masks.values()], run.opts.grad_clip)
            opt.step()
            run.tick(float(loss.detach()), "mask")
        return {name: (m.mask.detach() - 1.0).abs().clone() for name, m in masks.items()}
    finally:
        remove_parametrizations(linears)


def select_pivotal(variation: dict[str, Tensor], percent: float) -> dict[str, Tensor]:
    """Flat indices (sorted int64) of the top ``percent``% of all entries by mask variation, per weight."""
    names = list(variation)
    flat = torch.cat([variation[n].reshape(-1).float() for n in names])
    k = max(1, int(round(flat.numel() * percent / 100.0)))
    top = torch.topk(flat, k).indices
    out, offset = {}, 0
    for n in names:
        size = variation[n].numel()
        sel = top[(top >= offset) & (top < offset + size)] - offset
        out[n] = torch.sort(sel).values.to(torch.int64)
        offset += size
    return out


def union(selections: list[dict[str, Tensor]]) -> dict[str, Tensor]:
    """Union of several concepts' pivotal selections (Algorithm 1, line 6)."""
    out: dict[str, Tensor] = {}
    for sel in selections:
        for name, idx in sel.items():
            out[name] = torch.unique(torch.cat([out[name], idx])) if name in out else idx.clone()
    return out


def tune(run: ConceptRun, steps: int, table: TokenTable | None, *, pivotal: dict[str, Tensor] | None,
         cross_kv: bool, unet_all: bool) -> Deltas:
    """Train the chosen U-Net parameter set (+ tokens when ``table``); returns the U-Net deltas.

    ``pivotal``: flat indices per self-attention W_V (scattered trainable values). ``cross_kv``: every
    cross-attention W_K / W_V. ``unet_all``: every U-Net parameter. The dense parameters are backed up by the
    caller's manager before this runs; their deltas are computed against that backup.
    """
    from engine.concepts.apply import ConceptManager

    opts = run.opts
    unet = run.model.unet
    manager = ConceptManager.of(run.model)
    freeze_unet(unet)
    named = dict(unet.named_parameters())
    dense: list[str] = []
    if unet_all:
        dense = list(named)
    elif cross_kv:
        dense = [n for proj in ("to_k", "to_v") for n in attention_linears(unet, "cross_attn", proj)]
    manager.backup(dense)
    base = {n: manager._unet_backup[n] for n in dense}
    linears = attention_linears(unet, "self_attn", "to_v") if pivotal else {}
    scatters: dict[str, ScatterValues] = {}
    try:
        for name, lin in linears.items():
            if pivotal is not None and pivotal.get(name) is not None and pivotal[name].numel():
                scatters[name] = ScatterValues(lin.weight, pivotal[name])
                parametrize.register_parametrization(lin, "weight", scatters[name])
        unet_params = [named[n] for n in dense] + [s.values for s in scatters.values()]
        for p in unet_params:
            p.requires_grad_(True)
        groups = []
        if unet_params:
            groups.append({"params": unet_params, "lr": opts.unet_lr, "weight_decay": opts.weight_decay})
        if table is not None:
            groups.append({"params": [table.weight], "lr": opts.token_lr, "weight_decay": 0.0})
        if not groups:
            raise ModelError("concept tuning: no parameter set to train")
        opt = torch.optim.AdamW(groups, betas=opts.betas)
        trainable = unet_params + ([table.weight] if table is not None else [])
        for _ in range(steps):
            loss = run.loss(text_grad=table is not None)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, opts.grad_clip)
            opt.step()
            if table is not None:  # decoupled weight decay on the identifier rows only
                with torch.no_grad():
                    table.weight[table.ids] *= 1.0 - opts.token_lr * opts.weight_decay
            run.tick(float(loss.detach()), "training")
        deltas: Deltas = {}
        with torch.no_grad():
            for name, s in scatters.items():
                w0 = linears[name].parametrizations.weight.original.detach().reshape(-1)[s.index].clone()
                deltas[name] = (s.index.clone(), (s.values.detach() - w0).float())
            for n in dense:
                delta = (named[n].detach() - base[n]).float()
                if torch.count_nonzero(delta):
                    deltas[n] = (None, delta)
        return deltas
    finally:
        remove_parametrizations(linears)
        freeze_unet(unet)


def train_pivotal(model: Any, data: list[ConceptData], opts: ConceptOptions, table: TokenTable,
                  progress: ProgressFn | None = None) -> tuple[Deltas, dict[str, Any]]:
    """Algorithm 1: masks per concept, union of the pivotal sets, joint tuning. Returns (deltas, summary)."""
    total = opts.mask_steps * len(data) + opts.steps
    selections, variations = [], []
    step0 = 0
    for d in data:  # tokens stay fixed while the masks train
        run = ConceptRun(model, [d], opts, progress)
        run.total, run.step = total, step0
        variation = learn_mask(run, opts.mask_steps, opts.mask_lr)
        step0 = run.step
        variations.append(variation)
        selections.append(select_pivotal(variation, opts.pivotal_percent))
    pivotal = union(selections)
    run = ConceptRun(model, data, opts, progress)
    run.total, run.step = total, step0
    deltas = tune(run, opts.steps, table, pivotal=pivotal, cross_kv=True, unet_all=False)
    n_piv = sum(int(i.numel()) for i in pivotal.values())
    n_v = sum(int(v.numel()) for v in variations[0].values())
    summary = {"pivotal_entries": n_piv, "self_attention_v_entries": n_v,
               "pivotal_fraction": n_piv / max(1, n_v), "final_loss": run.losses[-1] if run.losses else None,
               "seconds_per_step": (time.monotonic() - run.t0) / max(1, len(run.losses))}
    log.info("pivotal: %d of %d self-attention W_V entries (%.2f%%) pivotal for %s", n_piv, n_v,
             100.0 * n_piv / max(1, n_v), [d.name for d in data])
    return deltas, summary


def train_baseline(model: Any, data: list[ConceptData], opts: ConceptOptions, table: TokenTable | None,
                   progress: ProgressFn | None = None) -> tuple[Deltas, dict[str, Any]]:
    """``cross-kv`` (cross-attention K/V + tokens) or ``unet-all`` (all U-Net parameters, tokens fixed)."""
    run = ConceptRun(model, data, opts, progress)
    run.total = opts.steps
    deltas = tune(run, opts.steps, table if opts.method == "cross-kv" else None, pivotal=None,
                  cross_kv=opts.method == "cross-kv", unet_all=opts.method == "unet-all")
    return deltas, {"final_loss": run.losses[-1] if run.losses else None,
                    "seconds_per_step": (time.monotonic() - run.t0) / max(1, len(run.losses))}
