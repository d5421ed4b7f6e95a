"""run_pipeline on the tiny model (random init): exact lengths, given stems, inpainting, continuation,
seeds, guidance batching, cancellation and bad input. Few steps, half a second of audio."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.pipeline import GenerationRequest, crossfade_weights, run_pipeline
from protocol.errors import InvalidArgument, JobCancelled, NonFiniteAudio, RegionError, UnknownStem

N = 24_007  # 0.5 s + 7 samples: not a multiple of the 320-sample latent hop


def noise_audio(seed: int, n: int = N, amp: float = 0.1) -> np.ndarray:
    return (amp * np.random.default_rng(seed).standard_normal((2, n))).astype(np.float32)


class UNetCalls:
    """Records every U-Net forward the pipeline makes: batch size, per-stem timesteps, causal flag."""

    def __init__(self, unet: torch.nn.Module) -> None:
        self.calls: list[dict] = []
        self.handle = unet.register_forward_pre_hook(self._hook, with_kwargs=True)

    def _hook(self, module, args, kwargs) -> None:
        x, t = args[0], args[1]
        attrs = kwargs.get("attrs")
        self.calls.append({"batch": x.shape[0], "t": torch.as_tensor(t).detach().cpu().clone(),
                           "causal": bool(kwargs.get("causal", False)),
                           "attrs": None if attrs is None else attrs.detach().cpu().clone()})

    def __enter__(self) -> "UNetCalls":
        return self

    def __exit__(self, *exc) -> None:
        self.handle.remove()


def req(**kw) -> GenerationRequest:
    base = dict(prompt="funky bass and drums", num_samples=N, steps=2, seed=7)
    base.update(kw)
    return GenerationRequest(**base)


def test_joint_generation_exact_lengths_and_mix(tiny_model) -> None:
    stems = list(tiny_model.config.stems)
    with UNetCalls(tiny_model.unet) as rec:
        res = run_pipeline(tiny_model, req(bpm=100, key="E minor"))
    assert list(res.stems) == stems
    for audio in res.stems.values():
        assert audio.shape == (2, N) and audio.dtype == np.float32
    np.testing.assert_array_equal(res.mix, sum(res.stems[s] for s in stems))
    assert res.sample_rate == 48_000 and res.seed == 7
    m = res.manifest
    assert m["frames"] == N and m["task"] == "generate" and m["stems_generated"] == stems
    assert m["seed"] == 7 and m["steps"] == 2 and m["sampler"] == "dpmpp-2m" and m["trained"] is False
    assert "100" in m["full_prompt"] and "bass" in m["full_prompt"]
    # guided: one forward per step, all stems at the same t, bidirectional; a key in the prompt: chords planned
    # and guided apart, so the batch is 3 (full, text-only, unconditional)
    assert m["chords_source"] == "planned" and m["chord_cfg"] == 6.0
    assert [c["batch"] for c in rec.calls] == [3, 3]
    assert rec.calls[0]["t"].shape == (3, 4) and bool((rec.calls[0]["t"] == 1000).all())
    assert not any(c["causal"] for c in rec.calls)


@pytest.mark.parametrize("n", [1, 319, 321, 4801])
def test_odd_lengths(tiny_model, n: int) -> None:
    res = run_pipeline(tiny_model, req(num_samples=n, stems=["drums"], steps=1, cfg=1.0))
    assert list(res.stems) == ["drums"] and res.stems["drums"].shape == (2, n) and res.mix.shape == (2, n)


def test_conditional_generation_keeps_given_stems(tiny_model) -> None:
    given = {"bass": noise_audio(1), "drums": noise_audio(2)[:1]}  # drums mono: made stereo
    with UNetCalls(tiny_model.unet) as rec:
        res = run_pipeline(tiny_model, req(stems=["melody"], given=given))
    assert list(res.stems) == ["bass", "drums", "melody"]
    np.testing.assert_array_equal(res.stems["bass"], given["bass"])
    np.testing.assert_array_equal(res.stems["drums"], np.repeat(given["drums"], 2, axis=0))
    assert res.manifest["stems_given"] == ["bass", "drums"] and res.manifest["stems_free"] == ["instrument"]
    t = rec.calls[0]["t"]  # (2, k): bass, drums given (0), instrument free (T), melody generated
    assert t[:, 0].tolist() == [0, 0] and t[:, 1].tolist() == [0, 0]
    assert t[:, 2].tolist() == [1000, 1000] and t[:, 3].tolist() == [1000, 1000]
    assert 0 < float(rec.calls[1]["t"][0, 3]) < 1000 and float(rec.calls[1]["t"][0, 2]) == 1000


def test_marginal_generation_others_free(tiny_model) -> None:
    with UNetCalls(tiny_model.unet) as rec:
        res = run_pipeline(tiny_model, req(stems=["bass"], steps=3))
    assert list(res.stems) == ["bass"]
    last = rec.calls[-1]["t"][0]
    assert 0 < float(last[0]) < 1000 and last[1:].tolist() == [1000, 1000, 1000]


def test_seeds(tiny_model) -> None:
    a = run_pipeline(tiny_model, req(seed=11, stems=["bass"]))
    b = run_pipeline(tiny_model, req(seed=11, stems=["bass"]))
    c = run_pipeline(tiny_model, req(seed=12, stems=["bass"]))
    np.testing.assert_array_equal(a.stems["bass"], b.stems["bass"])
    assert not np.array_equal(a.stems["bass"], c.stems["bass"])
    d = run_pipeline(tiny_model, req(seed=None, stems=["bass"], steps=1))
    assert isinstance(d.seed, int) and d.manifest["seed"] == d.seed
    e = run_pipeline(tiny_model, req(seed=d.seed, stems=["bass"], steps=1))
    np.testing.assert_array_equal(d.stems["bass"], e.stems["bass"])


def test_guidance_off_is_single_batch(tiny_model) -> None:
    with UNetCalls(tiny_model.unet) as rec:
        run_pipeline(tiny_model, req(cfg=1.0, steps=3, sampler="ddim"))
    assert [c["batch"] for c in rec.calls] == [1, 1, 1]


def test_tempo_and_key_reach_the_unet_in_the_conditional_branch_only(tiny_model) -> None:
    with UNetCalls(tiny_model.unet) as rec:
        run_pipeline(tiny_model, req(cfg=3.0, chord_cfg=3.0, steps=2, bpm=96, key="F#m"))  # plain: 2 branches
    assert len(rec.calls) == 2
    for call in rec.calls:
        a = call["attrs"]
        assert a is not None and tuple(a.shape) == (2, 2)
        assert a[0].tolist() == [96.0, 18.0]  # conditional: the request's tempo and key (F# minor = 6 + 12)
        assert torch.isnan(a[1, 0]) and a[1, 1] == -1  # unconditional branch: unknown
    with UNetCalls(tiny_model.unet) as rec:
        run_pipeline(tiny_model, req(cfg=1.0, chord_cfg=1.0, steps=1, prompt="house at 124 BPM in A minor"))
    assert rec.calls[0]["attrs"].tolist() == [[124.0, 21.0]]  # read off the prompt text itself


def test_inpainting_keeps_outside_bit_exact(tiny_model) -> None:
    inputs = {"bass": noise_audio(3), "drums": noise_audio(4), "melody": noise_audio(5)}
    start, end = 6_001, 15_999
    with UNetCalls(tiny_model.unet) as rec:
        res = run_pipeline(tiny_model, req(task="inpaint", num_samples=0, stems=["bass", "drums"], given=inputs,
                                           region=(start, end)))
    assert list(res.stems) == ["bass", "drums", "melody"]
    for name in ("bass", "drums"):
        out, src = res.stems[name], inputs[name]
        assert out.shape == (2, N)
        np.testing.assert_array_equal(out[:, :start], src[:, :start])
        np.testing.assert_array_equal(out[:, end:], src[:, end:])
        inside = np.abs(out[:, start:end] - src[:, start:end])
        assert inside.max() > 1e-3 and bool((inside[:, 1:-1] > 0).mean() > 0.99)
    np.testing.assert_array_equal(res.stems["melody"], inputs["melody"])
    m = res.manifest
    assert m["crossfade_samples"] == 480 and m["region"]["start"] == start and m["mode"] == "bidirectional"
    assert not any(c["causal"] for c in rec.calls)
    t = rec.calls[0]["t"][0]  # bass, drums generated; instrument free; melody given
    assert t.tolist() == [1000, 1000, 1000, 0]


def test_inpainting_short_region_clips_crossfade(tiny_model) -> None:
    inputs = {"bass": noise_audio(6)}
    res = run_pipeline(tiny_model, req(task="inpaint", num_samples=0, stems=["bass"], given=inputs,
                                       region=(100, 200), steps=1))
    assert res.manifest["crossfade_samples"] == 50
    np.testing.assert_array_equal(res.stems["bass"][:, :100], inputs["bass"][:, :100])
    np.testing.assert_array_equal(res.stems["bass"][:, 200:], inputs["bass"][:, 200:])


def test_crossfade_weights() -> None:
    w = crossfade_weights(1000, 480)
    assert w.shape == (1000,) and bool((w > 0).all()) and bool((w <= 1).all())
    assert bool((w[480:520] == 1).all()) and w[0] < 0.01 and np.allclose(w, w[::-1])
    assert bool((np.diff(w[:480]) > 0).all())
    assert bool((crossfade_weights(6, 480)[:3] < 1).all())  # clipped to half the region


def test_continuation_prefix_exact_and_causal(tiny_model) -> None:
    inputs = {"bass": noise_audio(7), "drums": noise_audio(8)}
    extra = 12_345
    with UNetCalls(tiny_model.unet) as rec:
        res = run_pipeline(tiny_model, req(task="continue", num_samples=0, given=inputs, continue_samples=extra))
    assert list(res.stems) == ["bass", "drums"]
    for name, src in inputs.items():
        assert res.stems[name].shape == (2, N + extra)
        np.testing.assert_array_equal(res.stems[name][:, :N], src)
    assert res.mix.shape == (2, N + extra)
    assert rec.calls and all(c["causal"] for c in rec.calls)
    m = res.manifest
    assert m["mode"] == "unidirectional" and m["frames"] == N + extra and m["context_samples"] == 24_320
    assert m["stems_generated"] == ["bass", "drums"]


def test_cancel_within_one_step(tiny_model) -> None:
    def cancel(step: int, total: int, x0: torch.Tensor) -> None:
        assert total == 10 and x0.ndim == 3
        if step == 2:
            raise JobCancelled("stop")

    with UNetCalls(tiny_model.unet) as rec, pytest.raises(JobCancelled):
        run_pipeline(tiny_model, req(steps=10), cancel)
    assert len(rec.calls) == 2


def test_bad_input(tiny_model) -> None:
    with pytest.raises(UnknownStem, match="vocals.*bass, drums, instrument, melody"):
        run_pipeline(tiny_model, req(stems=["vocals"]))
    with pytest.raises(UnknownStem, match="guitar"):
        run_pipeline(tiny_model, req(given={"guitar": noise_audio(1)}))
    bad = noise_audio(1)
    bad[0, 5] = np.nan
    with pytest.raises(NonFiniteAudio):
        run_pipeline(tiny_model, req(stems=["bass"], given={"drums": bad}))
    inputs = {"bass": noise_audio(2)}
    for region in [(0, N + 1), (500, 500), (-1, 100), (900, 100)]:
        with pytest.raises(RegionError):
            run_pipeline(tiny_model, req(task="inpaint", num_samples=0, stems=["bass"], given=inputs, region=region))
    with pytest.raises(UnknownStem):
        run_pipeline(tiny_model, req(task="inpaint", num_samples=0, stems=["drums"], given=inputs, region=(0, 10)))
    with pytest.raises(InvalidArgument):
        run_pipeline(tiny_model, req(sampler="euler"))
    with pytest.raises(InvalidArgument):
        run_pipeline(tiny_model, req(stems=["bass"], given={"bass": noise_audio(1)}))
    with pytest.raises(InvalidArgument):
        run_pipeline(tiny_model, req(task="continue", num_samples=0, given=inputs, continue_samples=0))


def test_continuation_window_is_limited_and_frame_aligned() -> None:
    from engine.pipeline import MAX_CONTEXT_SECONDS, _layout_continue

    stems = ("bass", "drums", "instrument", "melody")
    long_in = {"drums": noise_audio(9, n=12 * 48_000 + 5, amp=0.01)}
    lay = _layout_continue(stems, req(task="continue", given=long_in, continue_samples=1000), long_in)
    ctx = int(MAX_CONTEXT_SECONDS * 48_000)
    assert lay.context_samples == ctx and lay.window.shape == (4, 2, ctx + 1000) and lay.causal
    np.testing.assert_array_equal(lay.window[1, :, :ctx], long_in["drums"][:, -ctx:])  # the last 10 s
    assert lay.frame_mask.shape == (-(-(ctx + 1000) // 320),)
    assert lay.frame_mask[: ctx // 320].sum() == 0 and bool((lay.frame_mask[ctx // 320:] == 1).all())
    assert lay.num_samples == 12 * 48_000 + 5 + 1000 and lay.generated == [1]
    short = {"bass": noise_audio(10, n=100)}
    lay = _layout_continue(stems, req(task="continue", given=short, continue_samples=50), short)
    assert lay.context_samples == 320 and lay.window.shape == (4, 2, 370)
    np.testing.assert_array_equal(lay.window[0, :, 220:320], short["bass"])  # left zero-padded
    assert not lay.window[0, :, :220].any() and lay.frame_mask.tolist() == [0.0, 1.0]


@pytest.mark.parametrize("prediction", ["v", "epsilon"])
def test_network_output_is_read_as_the_models_prediction_type(tiny_model, monkeypatch, prediction) -> None:
    """An oracle U-Net that knows the answer z* (a point mass) and answers in the model's prediction type: the
    sampler must land on z*, so the latents handed to the decoder are z*. Reading a v output as epsilon (or the
    reverse) lands elsewhere."""
    import dataclasses

    from engine.diffusion.schedule import NoiseSchedule

    cfg = dataclasses.replace(tiny_model.config,
                              diffusion=dataclasses.replace(tiny_model.config.diffusion, prediction=prediction))
    monkeypatch.setattr(tiny_model, "config", cfg)
    schedule = NoiseSchedule.from_config(cfg)
    k, D = cfg.num_stems, cfg.whitened_dim
    target: dict[int, torch.Tensor] = {}

    def oracle(x, t, text, text_mask=None, causal=False, attrs=None, grid_offset=None, chords=None):
        frames = x.shape[-1]
        z = target.setdefault(frames, torch.randn(1, k * D, frames, generator=torch.Generator().manual_seed(0)))
        x_t = x[:, : k * D].double()
        a, s = (f(torch.as_tensor(t, dtype=torch.float64)).repeat_interleave(D, dim=1)[..., None]
                for f in (schedule.alpha, schedule.sigma))
        out = (a * x_t - z) / s if prediction == "v" else (x_t - a * z) / s
        return out.to(x.dtype)

    monkeypatch.setattr(tiny_model.unet, "forward", oracle)
    decoded: list[torch.Tensor] = []
    decode = tiny_model.decode_stems
    monkeypatch.setattr(tiny_model, "decode_stems", lambda z, n: decoded.append(z.detach().clone()) or decode(z, n))
    res = run_pipeline(tiny_model, req(steps=4, sampler="ddim", cfg=3.0))
    (frames, z), = target.items()
    assert len(decoded) == 1 and set(res.stems) == set(cfg.stems)
    torch.testing.assert_close(decoded[0].float(), z.reshape(1, k, D, frames).float(), atol=1e-4, rtol=1e-4)
