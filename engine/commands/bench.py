"""``stemforge bench engine``: sampler speed, real-time factor and peak memory, against a raw baseline.

One run measures, for the tiny model (or ``--model``) on this host:

- baseline: the bare U-Net forward of exactly the batch one guided sampler step runs (one item per guidance
  branch: cond + uncond, and a third, text without chords, when the prompt names a key so chords are planned
  and guided with ``chord_cfg``; ``k`` stems, ``seconds * 150`` frames), no pipeline around it;
- pipeline: ``run_pipeline`` generating 4 stems x ``--seconds`` with CFG in ``--steps`` steps: seconds per
  sampler step (from the step callbacks' clock), total wall time, real-time factor (audio seconds / wall
  seconds), and the ratio per-step / baseline-forward (the pipeline's overhead per step);
- peak memory: process peak RSS (``resource.ru_maxrss``) and, on CUDA, ``max_memory_allocated``;
- on a CUDA host, also the ``jen1-composer`` U-Net in bf16: seconds per guided step and achieved TFLOP/s
  (FLOPs counted by ``torch.utils.flop_counter``) as a fraction of the device's dense bf16 peak.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import statistics
import time
from typing import Any

log = logging.getLogger(__name__)

#: the timed generation's prompt: it names no key, so no chords are planned (two guidance branches a step)
BENCH_PROMPT = "benchmark: funk groove"

#: dense bf16 tensor-core peaks (TFLOP/s, no sparsity) by device-name substring, first match wins
BF16_PEAK_TFLOPS = (("H200", 989.0), ("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("H100", 989.0), ("A100", 312.0), ("L40S", 362.0),
                    ("L4", 121.0), ("A10", 125.0), ("RTX 4090", 165.0))


def device_peak_tflops(name: str) -> float | None:
    for key, peak in BF16_PEAK_TFLOPS:
        if key in name:
            return peak
    return None


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def _sync(device) -> None:
    import torch

    if getattr(device, "type", str(device)) == "cuda":
        torch.cuda.synchronize()


def unet_inputs(cfg, frames: int, batch: int, device, dtype):
    """Random inputs shaped like one guided sampler step: x (B, C_in, F), t (B, k), text (B, L, H), mask (B, L)."""
    import torch

    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, cfg.unet_in_channels, frames, generator=g).to(device, dtype)
    t = torch.full((batch, cfg.num_stems), 500.0, device=device)
    text = torch.randn(batch, 16, cfg.text.hidden_size, generator=g).to(device, dtype)
    mask = torch.ones(batch, 16, dtype=torch.bool, device=device)
    return x, t, text, mask


def time_unet(unet, inputs, device, repeats: int) -> float:
    """Median seconds of one forward (after one warm-up)."""
    import torch

    times = []
    with torch.inference_mode():
        unet(*inputs)
        _sync(device)
        for _ in range(repeats):
            t0 = time.perf_counter()
            unet(*inputs)
            _sync(device)
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def count_flops(unet, inputs) -> int:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        unet(*inputs)
    return int(counter.get_total_flops())


def bench_unet_flops(cfg, device, dtype, steps: int, repeats: int, device_name: str) -> dict[str, Any]:
    """A freshly built U-Net of ``cfg`` in ``dtype``: one guided step (batch 2, ``segment_seconds`` of frames),
    its FLOPs (torch.utils.flop_counter), achieved TFLOP/s and the fraction of the device's bf16 peak."""
    import torch

    from engine.config import HOP, SAMPLE_RATE
    from engine.models.unet import OmniUNet1d

    with torch.device(device):
        unet = OmniUNet1d(cfg).to(dtype).eval()
    frames = -(-int(round(cfg.segment_seconds * SAMPLE_RATE)) // HOP)
    inputs = unet_inputs(cfg, frames, 2, device, dtype)
    cuda = getattr(device, "type", str(device)) == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    seconds = time_unet(unet, inputs, device, repeats)
    flops = count_flops(unet, inputs)
    peak = device_peak_tflops(device_name)
    achieved = flops / seconds / 1e12
    return {"params": sum(p.numel() for p in unet.parameters()), "dtype": str(dtype).replace("torch.", ""),
            "seconds_audio": cfg.segment_seconds, "batch": 2, "frames": frames, "s_per_guided_step": seconds,
            "gflop_per_step": flops / 1e9, "achieved_tflops": achieved, "device_peak_tflops": peak,
            "fraction_of_peak": achieved / peak if peak else None,
            "rtf_at_steps": cfg.segment_seconds / (seconds * steps),
            "cuda_max_allocated_mib": torch.cuda.max_memory_allocated() / 2**20 if cuda else None}


def bench_pipeline(model, seconds: float, steps: int, sampler: str, cfg_scale: float,
                   prompt: str = BENCH_PROMPT, chroma_guidance: float | None = None) -> dict[str, Any]:
    from engine.audio import num_samples
    from engine.diffusion.guidance import guidance_branches
    from engine.pipeline import GenerationRequest, run_pipeline

    stamps: list[float] = []
    req = GenerationRequest(task="generate", prompt=prompt, stems=list(model.config.stems),
                            num_samples=num_samples(seconds), seed=0, steps=steps, sampler=sampler, cfg=cfg_scale,
                            **({} if chroma_guidance is None else {"chroma_guidance": chroma_guidance}))
    t0 = time.perf_counter()
    result = run_pipeline(model, req, lambda step, total, x0: stamps.append(time.perf_counter()))
    wall = time.perf_counter() - t0
    per_step = (stamps[-1] - stamps[0]) / (len(stamps) - 1) if len(stamps) > 1 else wall
    chord_cfg = result.manifest.get("chord_cfg")
    return {"wall_s": wall, "s_per_step": per_step, "rtf": seconds / wall,
            "outside_sampler_s": wall - per_step * steps, "chord_cfg": chord_cfg,
            "chroma_guidance": result.manifest.get("chroma_guidance"),
            "branches": guidance_branches(cfg_scale, chord_cfg)}


def cmd_bench_engine(args: argparse.Namespace) -> int:
    import torch

    from engine.commands.generate import load_model
    from engine.config import SAMPLE_RATE, HOP, get_config

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() and args.device != "cpu" else "cpu")
    report: dict[str, Any] = {"device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
                              "threads": torch.get_num_threads(), "seconds": args.seconds, "steps": args.steps,
                              "sampler": args.sampler, "cfg": args.cfg, "prompt": args.prompt}
    frames = -(-int(round(args.seconds * SAMPLE_RATE)) // HOP)

    # 1. the model on the device, text encoder loaded (the daemon's worker does this once, not per request)
    t0 = time.perf_counter()
    model = load_model(args.model or "tiny")
    if device.type == "cuda":
        model.to(device)
    model.encode_text(["warm-up"])
    report["model_load_s"] = time.perf_counter() - t0
    cfg = model.config
    report["model"] = cfg.name
    report["trained"] = bool(getattr(model, "trained", False))

    # 2. the pipeline: 4 stems x seconds, steps, CFG (and chord guidance when the prompt names a key)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    pipe = bench_pipeline(model, args.seconds, args.steps, args.sampler, args.cfg, args.prompt)
    report.update({f"pipeline_{k}": v for k, v in pipe.items()})
    if pipe["chroma_guidance"] is not None:  # the same request without chroma guidance, for its cost
        plain = bench_pipeline(model, args.seconds, args.steps, args.sampler, args.cfg, args.prompt, 0.0)
        report["unguided_s_per_step"] = plain["s_per_step"]
        report["chroma_guidance_step_ratio"] = pipe["s_per_step"] / plain["s_per_step"]

    # 3. raw baseline: bare U-Net forward of the batch one of those sampler steps ran (one item per branch)
    batch = pipe["branches"]
    inputs = unet_inputs(cfg, frames, batch, device, next(model.unet.parameters()).dtype)
    raw = time_unet(model.unet, inputs, device, args.repeats)
    report["baseline_unet_forward_s"] = raw
    report["baseline_batch"] = batch
    report["pipeline_step_over_baseline"] = pipe["s_per_step"] / raw
    report["peak_rss_mib"] = _peak_rss_mib()
    if device.type == "cuda":
        report["cuda_max_allocated_mib"] = torch.cuda.max_memory_allocated() / 2**20

    # 4. GPU only: jen1-composer U-Net in bf16, achieved TFLOP/s vs the device peak
    if device.type == "cuda" and not args.skip_large:
        report["jen1_composer"] = bench_unet_flops(get_config("jen1-composer"), device, torch.bfloat16,
                                                   args.steps, args.repeats, report["device"])

    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"bench engine: model {report['model']} (trained={report['trained']}) on {report['device']}, "
          f"{report['threads']} threads; 4 stems x {args.seconds:g} s, {args.steps} steps {args.sampler}, cfg {args.cfg:g}"
          + (f", chord_cfg {pipe['chord_cfg']:g}" if pipe["chord_cfg"] is not None else ", no chords")
          + f"; {batch} guidance branch(es) per step")
    print(f"  {'':34s}{'pipeline':>14s}{'raw U-Net':>14s}{'ratio':>8s}")
    print(f"  {'seconds per sampler step':34s}{pipe['s_per_step']:14.4f}{raw:14.4f}{pipe['s_per_step'] / raw:8.2f}")
    print(f"  {'wall seconds (whole request)':34s}{pipe['wall_s']:14.2f}{raw * args.steps:14.2f}"
          f"{pipe['wall_s'] / (raw * args.steps):8.2f}")
    print(f"  {'real-time factor (audio s / wall s)':34s}{pipe['rtf']:14.3f}{args.seconds / (raw * args.steps):14.3f}")
    print(f"  {'outside the sampler (s)':34s}{pipe['outside_sampler_s']:14.2f}")
    if "chroma_guidance_step_ratio" in report:
        print(f"  chroma guidance {pipe['chroma_guidance']:g}: {pipe['s_per_step']:.4f} s per step against "
              f"{report['unguided_s_per_step']:.4f} without it ({report['chroma_guidance_step_ratio']:.2f}x; "
              f"engine/diffusion/chroma_guidance.py)")
    print(f"  model load (once per process, not in the figures above): {report['model_load_s']:.1f} s")
    print(f"  peak RSS {report['peak_rss_mib']:.0f} MiB" + (
        f", CUDA max allocated {report['cuda_max_allocated_mib']:.0f} MiB" if "cuda_max_allocated_mib" in report else ""))
    if "jen1_composer" in report:
        j = report["jen1_composer"]
        frac = f"{100 * j['fraction_of_peak']:.1f}% of {j['device_peak_tflops']:.0f}" if j["fraction_of_peak"] else "peak unknown"
        print(f"  jen1-composer U-Net bf16 ({j['params'] / 1e6:.0f} M params, batch 2 x {j['frames']} frames): "
              f"{j['s_per_guided_step']:.4f} s/step, {j['gflop_per_step']:.0f} GFLOP/step, "
              f"{j['achieved_tflops']:.1f} TFLOP/s ({frac}), RTF at {args.steps} steps {j['rtf_at_steps']:.2f}, "
              f"CUDA max allocated {j['cuda_max_allocated_mib'] or 0:.0f} MiB")
    return 0


def register(sub: argparse._SubParsersAction, groups: dict[str, argparse._SubParsersAction]) -> None:
    p = groups["bench"].add_parser("engine", help="sampler step time, real-time factor, peak memory")
    p.add_argument("--model", default=None, help="config name or checkpoint (default: tiny)")
    p.add_argument("--seconds", type=float, default=10.0, help="audio seconds per stem (default 10)")
    p.add_argument("--steps", type=int, default=50, help="sampler steps (default 50)")
    p.add_argument("--sampler", default="dpmpp-2m")
    p.add_argument("--cfg", type=float, default=3.0)
    p.add_argument("--prompt", default=BENCH_PROMPT,
                   help="prompt of the timed generation; one naming a key (\"funk in E minor\") plans chords and "
                        "runs the chord guidance's third branch")
    p.add_argument("--repeats", type=int, default=5, help="timed repeats of the raw forward")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--device", default="auto", choices=("auto", "cpu"), help="auto uses CUDA when present")
    p.add_argument("--skip-large", action="store_true", help="skip the jen1-composer GPU measurement")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    p.set_defaults(func=cmd_bench_engine)
