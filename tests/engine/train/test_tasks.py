"""Task sampling for diffusion training: JEN-1 multi-task mix + Composer curriculum (engine/train/tasks.py)."""

from __future__ import annotations

import pytest
import torch

from engine.config import get_config
from engine.diffusion.schedule import NoiseSchedule
from engine.train.tasks import Curriculum, build_batch, masked_mse, sample_plan
from protocol.errors import InvalidArgument

CFG = get_config("tiny")
T = CFG.diffusion.num_train_timesteps
K = CFG.num_stems


def _prompt(caption, prefix):
    parts = []
    if prefix is not None:
        task, names, given = prefix
        assert task in ("generate", "inpaint", "continue") and not set(names) & set(given)
        parts.append("[" + " & ".join(names) + " generation]")
    if caption is not None:
        parts.append(caption)
    return " ".join(parts)


def _plan(B=600, F=40, present=None, seed=0, step=0, total=100, joint_share=0.0):
    g = torch.Generator().manual_seed(seed)
    if present is None:
        present = torch.ones(B, K, dtype=torch.bool)
    return sample_plan(CFG, present, [f"song {b}" for b in range(B)], F, step, total, g, make_prompt=_prompt,
                       joint_share=joint_share)


def test_task_fractions_and_modes():
    plan = _plan(B=1500)
    frac = {name: plan.task.count(name) / 1500 for name in ("generate", "inpaint", "continue")}
    for name, f in frac.items():
        assert abs(f - 1 / 3) < 0.05, (name, f)
    causal = plan.causal.tolist()
    for task, c in zip(plan.task, causal):
        if task == "continue":
            assert c
        if task == "inpaint":
            assert not c
    gen_causal = [c for task, c in zip(plan.task, causal) if task == "generate"]
    assert 0.35 < sum(gen_causal) / len(gen_causal) < 0.65  # text-guided generation in both modes


def test_mask_ratios_and_shapes():
    F = 50
    plan = _plan(B=600, F=F)
    assert plan.frame_mask.shape == (600, F)
    for task, m in zip(plan.task, plan.frame_mask):
        ratio = m.float().mean().item()
        idx = torch.nonzero(m).flatten()
        if task == "generate":
            assert ratio == 1.0
            continue
        assert 0.2 - 1e-6 <= ratio <= 0.8 + 1e-6, ratio
        assert idx.max() - idx.min() + 1 == idx.numel()  # one contiguous span
        if task == "continue":
            assert idx.max() == F - 1  # right-side mask
    inpaint_starts = [int(torch.nonzero(m)[0]) for t, m in zip(plan.task, plan.frame_mask) if t == "inpaint"]
    assert len(set(inpaint_starts)) > 5  # random positions, not always at an edge


def test_timesteps_from_zero_ti_T_and_stage_consistent():
    plan = _plan(B=800, step=50, total=100)
    t = plan.timesteps
    assert t.shape == (800, K)
    for b in range(800):
        t_i = int(t[b, plan.anchor[b]])
        assert 1 <= t_i <= T - 1
        assert set(t[b].tolist()) <= {0, t_i, T}
        assert int((t[b] > 0).sum()) == int(plan.stage[b])  # stage s: s stems not given
    gen = plan.generated
    assert gen.any(dim=1).all()
    assert (t[gen] > 0).all() and (t[gen] < T).all()
    # both joint (t_i) and free (T) non-anchor stems occur
    assert (t == T).any() and (gen.sum(dim=1) > 1).any()


def _all_joint(plan, present):
    """(B,) bool: every present stem is generated at t_i (full joint generation), missing ones at T."""
    gen = plan.generated
    return ((gen == present) & (~present <= (plan.timesteps == T))).all(dim=1)


def test_joint_share_trains_full_joint_generation():
    B = 2000
    present = torch.ones(B, K, dtype=torch.bool)
    present[::4, 2] = False  # missing stems stay at T, never generated
    base = _all_joint(_plan(B=B, present=present, step=0, total=100), present).float().mean().item()
    assert base < 0.05  # the curriculum alone rarely asks for every stem at once
    plan = _plan(B=B, present=present, step=0, total=100, joint_share=0.5)
    joint = _all_joint(plan, present)
    assert 0.45 < joint.float().mean().item() < 0.58  # joint_share plus the curriculum's own joint items
    assert (plan.timesteps[::4, 2] == T).all() and not plan.generated[::4, 2].any()
    for b in torch.nonzero(joint).flatten()[:50].tolist():
        t_i = int(plan.timesteps[b, plan.anchor[b]])
        assert 1 <= t_i <= T - 1 and int(plan.stage[b]) in (K, int(present[b].sum()))
        if plan.prompts[b].startswith("["):  # the task prefix names every present stem (unless dropped)
            assert plan.prompts[b].startswith("[" + " & ".join(s for s, p in zip(CFG.stems, present[b]) if p) + " ")
    # every task still occurs among the joint items, and joint_share = 1 makes all of them joint
    assert {plan.task[b] for b in torch.nonzero(joint).flatten().tolist()} == {"generate", "inpaint", "continue"}
    assert _all_joint(_plan(B=200, joint_share=1.0), torch.ones(200, K, dtype=torch.bool)).all()
    with pytest.raises(InvalidArgument):
        _plan(B=2, joint_share=1.5)


def test_missing_stems_forced_to_T_and_never_anchor():
    B = 300
    present = torch.ones(B, K, dtype=torch.bool)
    present[:, 1] = False  # drums missing everywhere
    present[::2, 3] = False
    plan = _plan(B=B, present=present)
    assert (plan.timesteps[:, 1] == T).all()
    assert (plan.timesteps[::2, 3] == T).all()
    assert not plan.generated[:, 1].any()
    assert (plan.anchor != 1).all()
    with pytest.raises(InvalidArgument):
        _plan(B=2, present=torch.zeros(2, K, dtype=torch.bool))


def test_curriculum_monotone_and_keeps_easy_stages():
    cur = Curriculum(K)
    probs = torch.stack([cur.probabilities(s, 1000) for s in range(0, 1001, 50)])  # (21, k)
    assert torch.allclose(probs.sum(dim=1), torch.ones(21, dtype=torch.float64))
    assert (probs > 0.05).all()  # every stage stays in the mix
    tail = probs.flip(1).cumsum(1).flip(1)  # P(stage >= s)
    assert (tail[1:] - tail[:-1] >= -1e-12).all()  # harder stages never become less likely
    assert probs[0, 0] > probs[0, -1] and probs[-1, -1] > probs[-1, 0]
    early = _plan(B=1000, step=0, total=100).stage.float().mean()
    late = _plan(B=1000, step=100, total=100).stage.float().mean()
    assert late > early + 0.5


def test_prompts_prefix_and_dropout():
    plan = _plan(B=1000)
    n_nocap = sum(1 for p in plan.prompts if "song" not in p)
    n_noprefix = sum(1 for p in plan.prompts if "generation]" not in p)
    assert 0.05 < n_nocap / 1000 < 0.15  # cfg_dropout 0.1
    assert 0.05 < n_noprefix / 1000 < 0.15  # prefix_dropout 0.1
    for b, p in enumerate(plan.prompts):
        if "generation]" in p:
            names = p[1:p.index(" generation]")].split(" & ")
            expected = [CFG.stems[j] for j in range(K) if plan.generated[b, j]]
            assert names == expected


def test_build_batch_channels_targets_and_loss_mask():
    B, D, F = 64, CFG.whitened_dim, 24
    plan = _plan(B=B, F=F, seed=3)
    g = torch.Generator().manual_seed(1)
    z0 = torch.randn(B, K, D, F, generator=g)
    schedule = NoiseSchedule.from_config(CFG)
    abar = schedule.alphas_cumprod.float()
    batch = build_batch(plan, z0, schedule, g)
    assert batch.x.shape == (B, CFG.unet_in_channels, F)
    assert batch.eps.shape == (B, K * D, F)
    assert batch.t.shape == (B, K) and batch.loss_mask.shape == (B, K, F)
    noisy = batch.x[:, : K * D].reshape(B, K, D, F)
    ctx = batch.x[:, K * D:].reshape(B, K, D + 1, F)
    eps = batch.eps.reshape(B, K, D, F)
    for b in range(B):
        for j in range(K):
            tj = int(plan.timesteps[b, j])
            a = abar[tj]
            if tj == 0:
                assert torch.equal(noisy[b, j], z0[b, j])
                assert (ctx[b, j, D] == 0).all() and torch.equal(ctx[b, j, :D], z0[b, j])
            else:
                assert torch.allclose(noisy[b, j], a.sqrt() * z0[b, j] + (1 - a).sqrt() * eps[b, j], atol=1e-5)
            if plan.generated[b, j]:
                m = plan.frame_mask[b].float()
                assert torch.equal(ctx[b, j, D], m)
                assert torch.equal(batch.loss_mask[b, j], m)
                assert torch.equal(ctx[b, j, :D], z0[b, j] * (1 - m))
            else:
                assert (batch.loss_mask[b, j] == 0).all()
            if tj == T and not plan.generated[b, j]:
                assert (ctx[b, j, D] == 1).all() and (ctx[b, j, :D] == 0).all()
    groups = batch.mode_groups()
    assert sorted(torch.cat([i for _, i in groups]).tolist()) == list(range(B))
    assert all(bool(batch.causal[i].eq(mode).all()) for mode, i in groups)
    # masked MSE: zero for the target itself, counts only masked positions
    assert masked_mse(batch.eps, batch.eps, batch.loss_mask, K).item() == 0.0
    pred = batch.eps + (1 - batch.loss_mask).repeat_interleave(D, dim=1) * 100.0
    assert masked_mse(pred, batch.eps, batch.loss_mask, K).item() == 0.0
    assert masked_mse(batch.eps + 1.0, batch.eps, batch.loss_mask, K).item() == pytest.approx(1.0)


def test_deterministic_given_generator():
    a, b = _plan(B=50, seed=7), _plan(B=50, seed=7)
    assert a.task == b.task and a.prompts == b.prompts
    assert torch.equal(a.timesteps, b.timesteps) and torch.equal(a.frame_mask, b.frame_mask)
    c = _plan(B=50, seed=8)
    assert not torch.equal(a.timesteps, c.timesteps)
