"""The one inference pipeline: every task is one call of :func:`run_pipeline`.

Tasks (JEN-1 sec. 4.3, JEN-1 Composer sec. 4), all through the same steps:

- ``generate``: the stems in ``request.stems`` are generated (``t`` runs from ``T`` to 0); stems in
  ``request.given`` are conditions, encoded clean at ``t = 0``; every other stem is free (``t = T``, pure
  noise). All stems generated = joint generation; one stem, none given = marginal generation; some given =
  conditional generation. The co-composition loop (Composer Algorithm 1) is repeated ``generate`` calls
  with the kept stems passed as ``given``.
- ``inpaint``: the stems in ``request.stems`` are regenerated over ``request.region`` (samples
  ``[start, end)``): their in-context channels hold their own latent outside the region and the mask;
  the other input stems are given at ``t = 0``. Bidirectional mode. Outside the region the returned audio
  IS the input audio (copied sample for sample); inside, input and generated audio are blended with a
  raised-cosine crossfade of ``min(10 ms, region / 2)`` at each edge, lying entirely inside the region.
- ``continue``: unidirectional (causal) mode. A window of the last ``MAX_CONTEXT_SECONDS`` of the input
  (rounded up to whole latent frames, zero-padded on the left if the input is shorter) followed by the new
  frames; the in-context channels hold the known part, the mask covers the new part. The result is the
  input, copied exactly, followed by ``continue_samples`` new samples.

Masks, timesteps and in-context channels follow :mod:`engine.train.tasks` (the training side):
generated stems carry the task's frame mask, given stems mask 0 with their clean latent, free stems mask 1
with an empty latent. The text is ``build_prompt(prompt, bpm, key, task_prefix(generated, given, task))``
(e.g. "[bass & drums generation] funk, 100 bpm, E minor", "[melody inpainting] ...", "[continuation] ..."); the
unconditional branch of classifier-free guidance uses the same task prefix with an empty caption (or the
negative prompt), as the training's caption dropout does.
"""

from __future__ import annotations

import logging
import math
import secrets
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor

from engine.audio import check_finite, to_stereo
from engine.config import HOP, SAMPLE_RATE
from engine.diffusion.context import in_context, region_frame_mask, unet_input
from engine.diffusion.guidance import branch_layout, encode_guidance_text, guided_eps, uses_chord_guidance
from engine.diffusion.samplers import get_sampler
from engine.diffusion.schedule import NoiseSchedule
from protocol.errors import InvalidArgument, InvalidAudio, RegionError, StemforgeError, UnknownStem

log = logging.getLogger(__name__)

TASKS = ("generate", "inpaint", "continue")
DEFAULT_STEPS = 50
DEFAULT_SAMPLER = "dpmpp-2m"  # second order: at 50 steps well converged (see tests/engine/test_samplers.py)
DEFAULT_CFG = 3.0  # JEN-1 does not publish its scale; 3 is the common choice for latent audio diffusion
# chords guided apart from the text (three branches when chords are in use: 1.5x the U-Net batch a step, 1.30x
# the time on one CPU thread, `stemforge bench engine --prompt "funk at 100 bpm in E minor"`). On
# ``stemforge eval --n 64 --steps 20`` of checkpoints/stemforge-tiny-chords-s19700: key adherence 0.328 at 6
# (0.266 with the chords under the text's scale, 3; paired on the first 64 prompts, 4 items gained, none lost;
# 12 gained 7 and lost 3), stem roles 0.902 (0.879), tempo and bass onsets unchanged (docs/MODEL_CARD.md)
DEFAULT_CHORD_CFG: float | None = 6.0
CROSSFADE_SECONDS = 0.010  # inpainting edge: raised cosine, clipped to half the region
MAX_CONTEXT_SECONDS = 10.0  # continuation: how much of the input the model sees
MAX_STEPS = 1000
DEFAULT_CHROMA_GUIDANCE = 1.0  # measured on run 10: docs/MODEL_CARD.md, "Chroma guidance"
MAX_CHROMA_GUIDANCE = 10.0


@dataclass
class GenerationRequest:
    """One pipeline call. Audio is float32 (2, N) at 48 kHz; lengths and regions are in samples.

    ``stems``: generate -> stems to generate (empty = every stem not given); inpaint -> stems to
    regenerate in the region; continue -> must be empty or every input stem (all input stems continue).
    ``num_samples``: generate -> output length (> 0); inpaint/continue -> 0 (the input's length is used).
    ``grid_offset``: where sample 0 of the output (generate) or of the input (inpaint, continue) lies on the
    tempo grid, in seconds after a downbeat: the DAW timeline position when bar 1 is at 0 (the daemon passes the
    span's start). The beat clock of a U-Net that has one places the bar and beat phases from it and the BPM.
    """

    task: str = "generate"
    prompt: str = ""
    stems: list[str] = field(default_factory=list)
    given: dict[str, np.ndarray] = field(default_factory=dict)
    num_samples: int = 0
    region: tuple[int, int] | None = None
    continue_samples: int = 0
    bpm: float | None = None
    key: str | None = None
    negative_prompt: str | None = None
    seed: int | None = None
    steps: int = DEFAULT_STEPS
    sampler: str = DEFAULT_SAMPLER
    cfg: float = DEFAULT_CFG
    grid_offset: float = 0.0
    # chord symbols, one chord each ``chord_beats`` beats from the grid's downbeat ("Am F C G"); None: planned
    # from the prompt's key for a generation without pitched stems given; "" or "none": no chords
    chords: str | None = None
    chord_beats: float = 4.0
    # guidance scale of the chords apart from the text's (engine.diffusion.guidance; a model with a chord track
    # and chords to follow); None or ``cfg``: plain guidance of text + chords together
    chord_cfg: float | None = DEFAULT_CHORD_CFG
    # chroma guidance (engine.diffusion.chroma_guidance): how far each high-noise step moves the predicted bass,
    # instrument and melody onto the chords they follow (their roots, tones and collection); 0: off
    chroma_guidance: float = DEFAULT_CHROMA_GUIDANCE


@dataclass
class GenerationResult:
    stems: dict[str, np.ndarray]  # name -> float32 (2, N): generated and given/input stems
    mix: np.ndarray  # float32 (2, N): sum of ``stems``
    sample_rate: int
    seed: int
    manifest: dict[str, Any]


@dataclass
class _Layout:
    """Where the task puts each stem and which latent frames are known. Stem indices are in model order."""

    generated: list[int]  # stem indices sampled from t = T to 0
    given: list[int]  # stem indices encoded clean at t = 0
    window: np.ndarray  # (k, 2, Nw) audio the latents are encoded from (zeros for absent stems)
    frame_mask: Tensor  # (F,) 1 = frame the generated stems must produce
    causal: bool
    num_samples: int  # length of the returned audio
    context_samples: int = 0  # continuation: known samples at the start of the window
    window_start: int = 0  # sample of the window's first frame, relative to the request's sample 0


# ---- 1. validation ---------------------------------------------------------------------------------
def _stem_index(stems: tuple[str, ...], name: str, what: str) -> int:
    if name not in stems:
        raise UnknownStem(f"unknown stem {name!r} in {what}; valid stems: {', '.join(stems)}", stem=name)
    return stems.index(name)


def _clean_audio(name: str, audio: np.ndarray) -> np.ndarray:
    """Any (N,) / (C, N) array -> finite float32 (2, N) (mono duplicated); 48 kHz is the caller's job."""
    arr = np.asarray(audio)
    if arr.size == 0:
        raise InvalidAudio(f"stem {name!r} is empty")
    arr = to_stereo(arr.astype(np.float32, copy=False))
    check_finite(arr, f"stem {name!r}")
    return np.ascontiguousarray(arr)


def _fit(audio: np.ndarray, length: int) -> np.ndarray:
    """Zero-pad or trim (2, N) to (2, length)."""
    if audio.shape[1] >= length:
        return audio[:, :length]
    return np.pad(audio, ((0, 0), (0, length - audio.shape[1])))


def _validate(stems: tuple[str, ...], req: GenerationRequest) -> dict[str, np.ndarray]:
    if req.task not in TASKS:
        raise InvalidArgument(f"unknown task {req.task!r}; known: {', '.join(TASKS)}")
    for name in req.stems:
        _stem_index(stems, name, "stems")
    if len(set(req.stems)) != len(req.stems):
        raise InvalidArgument(f"stems listed twice: {req.stems}")
    given = {name: _clean_audio(name, audio) for name, audio in req.given.items()}
    for name in given:
        _stem_index(stems, name, "given stems")
    if not 1 <= int(req.steps) <= MAX_STEPS:
        raise InvalidArgument(f"steps must be in 1..{MAX_STEPS}, got {req.steps}")
    if not math.isfinite(float(req.cfg)) or req.cfg < 0:
        raise InvalidArgument(f"cfg must be a finite number >= 0, got {req.cfg}")
    if req.chord_cfg is not None and (not math.isfinite(float(req.chord_cfg)) or req.chord_cfg < 0):
        raise InvalidArgument(f"chord_cfg must be a finite number >= 0, got {req.chord_cfg}")
    if not math.isfinite(float(req.chroma_guidance)) or not 0 <= float(req.chroma_guidance) <= MAX_CHROMA_GUIDANCE:
        raise InvalidArgument(f"chroma_guidance must be a number in [0, {MAX_CHROMA_GUIDANCE}], "
                              f"got {req.chroma_guidance}")
    if not math.isfinite(float(req.grid_offset)):
        raise InvalidArgument(f"grid_offset must be a finite number of seconds, got {req.grid_offset}")
    get_sampler(req.sampler)  # unknown names fail before any work
    if req.chords is not None and not isinstance(req.chords, str):
        raise InvalidArgument(f"chords must be a string of chord symbols, got {type(req.chords).__name__}")
    return given


PITCHED_STEMS = ("bass", "instrument", "melody")
NO_CHORDS = ("", "none", "off")


def _harmony(model, request: GenerationRequest, full_prompt: str, seed: int) -> tuple[Any, str | None]:
    """(chords as :class:`engine.text.chords.Harmony` or None, where they came from: "given" | "planned")."""
    from engine.text.chords import parse_chords, plan_chords

    has_track = getattr(model.unet, "chord_track", None) is not None
    if request.chords is not None:
        if request.chords.strip().lower() in NO_CHORDS:
            return None, None
        harmony = parse_chords(request.chords, request.chord_beats)  # InvalidArgument names a bad symbol
        if not has_track:
            raise InvalidArgument("this model has no chord track: leave chords out (or retrain it with one)")
        return harmony, "given"
    pitched_given = any(s in PITCHED_STEMS for s in request.given)
    if has_track and request.task == "generate" and not pitched_given:
        harmony = plan_chords(full_prompt, seed)
        return harmony, ("planned" if harmony is not None else None)
    return None, None


# ---- 2. layout per task ----------------------------------------------------------------------------
def _layout_generate(stems: tuple[str, ...], req: GenerationRequest, given: dict[str, np.ndarray]) -> _Layout:
    n = int(req.num_samples)
    if n <= 0:
        raise InvalidArgument(f"num_samples must be positive for generation, got {req.num_samples}")
    both = sorted(set(req.stems) & set(given))
    if both:
        raise InvalidArgument(f"stems both generated and given: {', '.join(both)}")
    names = list(req.stems) or [s for s in stems if s not in given]
    if not names:
        raise InvalidArgument("nothing to generate: every stem is given")
    window = np.zeros((len(stems), 2, n), dtype=np.float32)
    for name, audio in given.items():
        if audio.shape[1] != n:
            log.info("given stem %s has %d samples; fitted to %d", name, audio.shape[1], n)
        window[stems.index(name)] = _fit(audio, n)
    frames = -(-n // HOP)
    return _Layout(generated=sorted(stems.index(s) for s in names), given=sorted(stems.index(s) for s in given),
                   window=window, frame_mask=torch.ones(frames), causal=False, num_samples=n)


def _input_window(stems: tuple[str, ...], given: dict[str, np.ndarray]) -> tuple[np.ndarray, int]:
    """All input stems as (k, 2, N), N = the longest input (shorter stems zero-padded)."""
    if not given:
        raise InvalidArgument("no input stems: give at least one stem (bass.wav, drums.wav, ...)")
    n = max(a.shape[1] for a in given.values())
    window = np.zeros((len(stems), 2, n), dtype=np.float32)
    for name, audio in given.items():
        if audio.shape[1] != n:
            log.warning("input stem %s has %d samples, padded to %d", name, audio.shape[1], n)
        window[stems.index(name)] = _fit(audio, n)
    return window, n


def _layout_inpaint(stems: tuple[str, ...], req: GenerationRequest, given: dict[str, np.ndarray]) -> _Layout:
    window, n = _input_window(stems, given)
    if not req.stems:
        raise InvalidArgument("inpainting needs the stems to regenerate")
    for name in req.stems:
        if name not in given:
            raise UnknownStem(f"stem {name!r} is not in the input; input stems: {', '.join(given)}", stem=name)
    if req.region is None:
        raise RegionError("inpainting needs a region (start, end) in samples")
    start, end = int(req.region[0]), int(req.region[1])
    if not 0 <= start < end <= n:
        raise RegionError(f"region [{start}, {end}) samples is empty or outside the audio (0..{n} samples, "
                          f"{n / SAMPLE_RATE:.3f} s)", start=start, end=end, length=n)
    frames = -(-n // HOP)
    gen = sorted(stems.index(s) for s in req.stems)
    return _Layout(generated=gen, given=sorted(stems.index(s) for s in given if stems.index(s) not in gen),
                   window=window, frame_mask=region_frame_mask(start, end, frames), causal=False, num_samples=n)


def _layout_continue(stems: tuple[str, ...], req: GenerationRequest, given: dict[str, np.ndarray]) -> _Layout:
    audio, n = _input_window(stems, given)
    if int(req.continue_samples) <= 0:
        raise InvalidArgument(f"continuation needs continue_samples > 0, got {req.continue_samples}")
    if req.stems and sorted(req.stems) != sorted(given):
        raise InvalidArgument(f"continuation extends every input stem ({', '.join(given)}); got stems {req.stems}")
    new = int(req.continue_samples)
    max_ctx = int(round(MAX_CONTEXT_SECONDS * SAMPLE_RATE))
    ctx = -(-min(n, max_ctx) // HOP) * HOP  # whole latent frames
    known = audio[:, :, max(0, n - ctx):]  # (k, 2, <= ctx)
    window = np.zeros((len(stems), 2, ctx + new), dtype=np.float32)
    window[:, :, ctx - known.shape[2]:ctx] = known  # left zero-padding when the input is short
    frames = -(-(ctx + new) // HOP)
    mask = torch.zeros(frames)
    mask[ctx // HOP:] = 1.0
    return _Layout(generated=sorted(stems.index(s) for s in given), given=[], window=window, frame_mask=mask,
                   causal=True, num_samples=n + new, context_samples=ctx, window_start=n - ctx)


LAYOUTS: dict[str, Callable[[tuple[str, ...], GenerationRequest, dict[str, np.ndarray]], _Layout]] = {
    "generate": _layout_generate, "inpaint": _layout_inpaint, "continue": _layout_continue,
}


# ---- 9. output assembly ----------------------------------------------------------------------------
def crossfade_weights(length: int, edge: int) -> np.ndarray:
    """(length,) weight of the generated audio over a region: raised-cosine ramps of ``edge`` samples at
    both ends (never 0 or 1 on the ramps' samples), 1 in between. ``edge`` is clipped to ``length // 2``."""
    edge = max(0, min(int(edge), length // 2))
    w = np.ones(length, dtype=np.float64)
    if edge:
        ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(edge) + 0.5) / edge)  # (edge,) rising in (0, 1)
        w[:edge] = ramp
        w[length - edge:] = ramp[::-1]
    return w


def _assemble(task: str, layout: _Layout, stems: tuple[str, ...], given: dict[str, np.ndarray],
              decoded: dict[str, np.ndarray], req: GenerationRequest) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    out: dict[str, np.ndarray] = {}
    extra: dict[str, Any] = {}
    if task == "generate":
        for i in layout.generated:
            out[stems[i]] = decoded[stems[i]]
        for i in layout.given:
            out[stems[i]] = np.ascontiguousarray(layout.window[i])  # the given audio, untouched
    elif task == "inpaint":
        start, end = int(req.region[0]), int(req.region[1])  # type: ignore[index]
        edge = min(int(round(CROSSFADE_SECONDS * SAMPLE_RATE)), (end - start) // 2)
        w = crossfade_weights(end - start, edge)  # (L,)
        for name in given:
            src = layout.window[stems.index(name)]
            if stems.index(name) in layout.generated:
                res = src.copy()
                seg = src[:, start:end].astype(np.float64) * (1.0 - w) + decoded[name][:, start:end] * w
                res[:, start:end] = seg.astype(np.float32)
                out[name] = res
            else:
                out[name] = np.ascontiguousarray(src)
        extra = {"crossfade_samples": edge, "crossfade": "raised cosine inside the region"}
    else:  # continue
        n_in = layout.num_samples - int(req.continue_samples)
        for name in given:
            tail = decoded[name][:, layout.context_samples:layout.context_samples + int(req.continue_samples)]
            out[name] = np.ascontiguousarray(np.concatenate([_fit(given[name], n_in), tail], axis=1))
        extra = {"context_samples": layout.context_samples, "input_samples": n_in,
                 "continue_samples": int(req.continue_samples)}
    return out, extra


# ---- the pipeline ----------------------------------------------------------------------------------
def _model_device_dtype(module: torch.nn.Module) -> tuple[torch.device, torch.dtype]:
    p = next(module.parameters())
    return p.device, p.dtype


def run_pipeline(model, request: GenerationRequest,
                 callback: Callable[[int, int, Tensor], None] | None = None) -> GenerationResult:
    """Run one generation / inpainting / continuation request on a ``StemforgeModel``.

    ``callback(step, total, x0_pred)`` is called after every sampler step and may raise ``JobCancelled``.
    """
    from engine.text.prompt import build_prompt, task_prefix  # the model bundle's text side

    cfg = model.config
    stems: tuple[str, ...] = tuple(cfg.stems)
    k, D = len(stems), int(cfg.whitened_dim)

    # 1. Validate the request, normalise the given audio to finite float32 (2, N).
    given = _validate(stems, request)

    # 2. Lay out the task: which stems are generated / given / free, the audio window, the frame mask.
    layout = LAYOUTS[request.task](stems, request, given)
    free = [i for i in range(k) if i not in layout.generated and i not in layout.given]
    nw = layout.window.shape[2]
    frames = int(layout.frame_mask.numel())
    seed = int(request.seed) if request.seed is not None else secrets.randbelow(2**31)
    generator = torch.Generator(device="cpu").manual_seed(seed)
    device, dtype = _model_device_dtype(model.unet)
    schedule = NoiseSchedule.from_config(cfg)
    T = float(schedule.T)

    with torch.inference_mode():
        # 3. Encode the known audio (given stems, inpainting / continuation context) to whitened latents.
        known = sorted(set(layout.given) | (set(layout.generated) if request.task != "generate" else set()))
        if known:
            ae_dtype = _model_device_dtype(model.autoencoder)[1]
            audio = torch.from_numpy(layout.window)[None].to(device=device, dtype=ae_dtype)  # (1, k, 2, Nw)
            z_known = model.encode_stems(audio).float()  # (1, k, D, F)
            if tuple(z_known.shape) != (1, k, D, frames):
                raise StemforgeError(f"encoder gave latents {tuple(z_known.shape)}, expected {(1, k, D, frames)}")
        else:
            z_known = torch.zeros(1, k, D, frames, device=device)

        # 4. In-context channels and the per-stem timestep template (0 given, T free, t generated).
        ctx_mask = torch.zeros(1, k, frames, device=device)
        for i in layout.generated:
            ctx_mask[0, i] = layout.frame_mask.to(device)
        for i in free:
            ctx_mask[0, i] = 1.0
        context = in_context(z_known, ctx_mask)  # (1, k*(D+1), F)
        t_template = torch.zeros(1, k, device=device)
        t_template[0, free] = T

        # 5. Text: caption with tempo/key and the task prefix; uncond = same prefix, empty or negative caption.
        names = [stems[i] for i in layout.generated]
        prefix = task_prefix(names, [stems[i] for i in layout.given], request.task, stems=stems)
        full_prompt = build_prompt(request.prompt, bpm=request.bpm, key=request.key, task_prefix=prefix)
        uncond_prompt = build_prompt(request.negative_prompt or "", task_prefix=prefix)
        text = encode_guidance_text(model.encode_text, [full_prompt], [uncond_prompt], request.cfg)
        states, text_mask = text.states.to(device), text.mask.to(device)
        attrs = text.attrs.to(device) if text.attrs is not None else None
        grid_offset = float(request.grid_offset) + layout.window_start / SAMPLE_RATE  # frame 0 on the tempo grid

        # 5b. Chords (a model with a chord track): given, or planned from the prompt's key; the unconditional
        #     branch has none, as in training, where a dropped caption drops the chords with it.
        harmony, chord_source = _harmony(model, request, build_prompt(request.prompt, bpm=request.bpm,
                                                                      key=request.key), seed)
        has_track = getattr(model.unet, "chord_track", None) is not None
        # chord guidance (engine.diffusion.guidance) when there are chords to follow: the branches full
        # (text + chords), text without chords[, unconditional] instead of cond, uncond
        chord_scale = request.chord_cfg if has_track and harmony is not None else None
        if not uses_chord_guidance(text.scale, chord_scale):
            chord_scale = None
        rows, hears_chords = branch_layout(text.scale, chord_scale)
        pick = torch.tensor(rows, device=device)
        states, text_mask = states[pick], text_mask[pick]
        attrs = attrs[pick] if attrs is not None else None
        chords = None
        guide = None
        if has_track:
            from engine.text.attributes import parse_bpm
            from engine.text.chords import chord_features

            frame_s = cfg.autoencoder.hop / cfg.autoencoder.sample_rate
            feats = chord_features(harmony, parse_bpm(full_prompt), grid_offset, frames, frame_s)[None]
            chords = torch.cat([feats if on else torch.zeros_like(feats) for on in hears_chords]).to(device)
            if harmony is not None and request.chroma_guidance > 0:
                from engine.diffusion.chroma_guidance import make_chroma_guide
                from engine.text.chords import prompt_key

                key = prompt_key(full_prompt)
                guide = make_chroma_guide(model, stems, list(layout.generated), feats[0].to(device),
                                          layout.frame_mask.to(device), nw, request.chroma_guidance, T,
                                          None if key is None else key.scale_pcs)

        # 6. Noise: one (k, D, F) draw from the seed; generated stems start from their slice, free stems
        #    keep theirs as the fixed t = T input.
        noise = torch.randn(1, k, D, frames, generator=generator).to(device)  # (1, k, D, F)
        base = z_known.clone()  # given stems stay clean; generated slices are replaced at every step
        base[:, free] = noise[:, free]
        gen_idx = torch.tensor(layout.generated, device=device)
        x_T = noise[:, gen_idx].reshape(1, len(gen_idx) * D, frames)  # (1, n*D, F)

        def unet_eps(x_in: Tensor, t_in: Tensor) -> Tensor:  # (nB, C_in, F), (nB, k) -> (nB, k*D, F) epsilon
            out = model.unet(x_in.to(dtype), t_in, states, text_mask, causal=layout.causal, attrs=attrs,
                             grid_offset=grid_offset, chords=chords).float()
            return schedule.eps_from_output(out, x_in[:, : k * D].float(), t_in)

        def model_fn(x: Tensor, t: float) -> Tensor:
            z = base.clone()  # (1, k, D, F)
            z[:, gen_idx] = x.reshape(1, len(gen_idx), D, frames)
            t_vec = t_template.clone()
            t_vec[:, gen_idx] = float(t)
            eps = guided_eps(unet_eps, unet_input(z, context), t_vec, text.scale, chord_scale)  # (1, k*D, F)
            eps = eps.reshape(1, k, D, frames)[:, gen_idx].reshape(1, len(gen_idx) * D, frames)
            if guide is None:
                return eps
            a, s = float(schedule.alpha(t)), float(schedule.sigma(t))
            x0 = guide((x - s * eps) / a, float(t), s)  # the data prediction, moved onto the chords
            return (x - a * x0) / s

        # 7. Sample the generated stems from t = T to 0.
        sampler = get_sampler(request.sampler)
        z_gen = sampler(model_fn, x_T, schedule, int(request.steps), generator=generator, callback=callback)

        # 8. Decode the generated stems to exactly the window's length.
        z_all = torch.zeros(1, k, D, frames, device=device)
        z_all[:, gen_idx] = z_gen.reshape(1, len(gen_idx), D, frames)
        ae_dtype = _model_device_dtype(model.autoencoder)[1]
        audio_out = model.decode_stems(z_all.to(ae_dtype), nw).float().cpu().numpy()  # (1, k, 2, Nw)
    decoded = {stems[i]: audio_out[0, i].astype(np.float32) for i in layout.generated}
    for name, audio in decoded.items():
        check_finite(audio, f"generated stem {name!r}")

    # 9. Assemble the returned stems: given stems copied, inpainting blended, continuation appended.
    out, extra = _assemble(request.task, layout, stems, given, decoded, request)
    for name, audio in out.items():
        if audio.shape != (2, layout.num_samples):
            raise StemforgeError(f"internal length error for {name}: {audio.shape} != (2, {layout.num_samples})")

    # 10. Mix (sum of the stems) and manifest.
    mix = np.zeros((2, layout.num_samples), dtype=np.float32)
    for name in stems:
        if name in out:
            mix += out[name]
    manifest: dict[str, Any] = {
        "task": request.task,
        "prompt": request.prompt,
        "full_prompt": full_prompt,
        "negative_prompt": request.negative_prompt,
        "unconditional_prompt": uncond_prompt,
        "bpm": request.bpm,
        "key": request.key,
        "grid_offset": float(request.grid_offset),
        "chords": harmony.to_dict() if harmony is not None else None,
        "chords_source": chord_source,
        "seed": seed,
        "sampler": request.sampler,
        "steps": int(request.steps),
        "cfg": float(request.cfg),
        "chord_cfg": None if chord_scale is None else float(chord_scale),
        "chroma_guidance": float(request.chroma_guidance) if guide is not None else None,
        "model": getattr(cfg, "name", None),
        "model_hash": getattr(model, "hash", None),
        "trained": bool(getattr(model, "trained", False)),
        "sample_rate": SAMPLE_RATE,
        "frames": layout.num_samples,
        "seconds": layout.num_samples / SAMPLE_RATE,
        "latent_frames": frames,
        "mode": "unidirectional" if layout.causal else "bidirectional",
        "region": None if request.region is None or request.task != "inpaint" else {
            "start": int(request.region[0]), "end": int(request.region[1]),
            "start_seconds": int(request.region[0]) / SAMPLE_RATE, "end_seconds": int(request.region[1]) / SAMPLE_RATE},
        "stems_generated": names,
        "stems_given": [stems[i] for i in layout.given],
        "stems_free": [stems[i] for i in free],
        "stems": [s for s in stems if s in out],
        **extra,
    }
    log.info("%s: %s, seed %d, %d steps %s, cfg %.2f", request.task, ", ".join(names), seed, request.steps,
             request.sampler, request.cfg)
    return GenerationResult(stems={s: out[s] for s in stems if s in out}, mix=mix, sample_rate=SAMPLE_RATE,
                            seed=seed, manifest=manifest)
