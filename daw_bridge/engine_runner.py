"""The runner the engine worker process uses: load the model once, run pipeline requests.

Imported only inside the worker process (it imports torch and the engine). Payloads are plain
dicts built by :mod:`daw_bridge.jobs` (numpy arrays for given audio), so the parent never imports
torch. See :mod:`daw_bridge.worker` for the runner interface.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
from collections.abc import Callable
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


def load(model: str | None, threads: int | None, device: str | None = None) -> tuple[Any, dict[str, Any]]:
    """Load ``model`` (a checkpoint directory or hub id; None = the embedded default) once, on ``device``
    (None or ``auto`` = CUDA when available, else CPU)."""
    import torch

    if threads:
        torch.set_num_threads(int(threads))
    from engine.model import StemforgeModel

    if device in (None, "", "auto"):
        device = "cuda" if torch.cuda.is_available() else "cpu"
    bundle = (StemforgeModel.from_pretrained(model, device=device) if model
              else StemforgeModel.default(device=device))
    if hasattr(bundle, "eval"):
        bundle.eval()
    if hasattr(bundle, "encode_text"):
        bundle.encode_text(["warm up"])  # load the text encoder now, not in the first job
    cfg = bundle.config
    info: dict[str, Any] = {
        "name": getattr(cfg, "name", "unknown"),
        "hash": str(getattr(bundle, "hash", "")),
        "trained": bool(getattr(bundle, "trained", False)),
        "stems": list(cfg.stems),
        "path": model or "embedded default",
        "device": str(device),
    }
    try:
        from engine.diffusion.samplers import SAMPLERS

        info["samplers"] = sorted(SAMPLERS)
    except ImportError:
        info["samplers"] = []
    import engine.pipeline as pipeline

    for name in ("DEFAULT_STEPS", "DEFAULT_SAMPLER", "DEFAULT_CFG"):
        if hasattr(pipeline, name):
            info[name.lower()] = getattr(pipeline, name)
    log.info("model %s loaded on %s (hash %s, %s)", info["name"], device, info["hash"][:12],
             "trained" if info["trained"] else "untrained random init")
    return bundle, info


def _progress_adapter(progress: Callable[[int, int, str], None]) -> Callable[..., None]:
    """The pipeline's callback: ``(step, total, ...)`` or ``(stage, step, total)``; forwards to ``progress``."""

    def callback(*args: Any, **kwargs: Any) -> None:
        ints = [a for a in args if isinstance(a, int) and not isinstance(a, bool)]
        strs = [a for a in args if isinstance(a, str)]
        step = int(kwargs.get("step", ints[0] if ints else 0))
        total = int(kwargs.get("total", ints[1] if len(ints) > 1 else 0))
        stage = str(kwargs.get("stage", strs[0] if strs else "sampling"))
        progress(step, total, stage)

    return callback


def run(bundle: Any, payload: dict[str, Any], progress: Callable[[int, int, str], None]) -> Any:
    """Run one request on the loaded model.

    ``payload["op"]`` (optional, set by daemon code, never by clients) names another operation as
    ``"module:function"``, called as ``function(bundle, payload, progress)`` in this process: the hook
    for jobs such as concept training (issue 5). Without it the payload is a generation request.
    """
    op = payload.get("op")
    if op:
        module_name, _, func_name = str(op).partition(":")
        func = getattr(importlib.import_module(module_name), func_name)
        return func(bundle, payload, progress)
    return run_generation(bundle, payload, progress)


def run_generation(bundle: Any, payload: dict[str, Any], progress: Callable[[int, int, str], None]) -> dict[str, Any]:
    """One pipeline request; returns ``{"stems": {stem: (2, N) float32}, "mix", "sample_rate", "seed", "manifest"}``."""
    import torch

    from engine.pipeline import GenerationRequest, run_pipeline

    names = {f.name for f in dataclasses.fields(GenerationRequest)}
    kwargs = {k: v for k, v in payload.items() if k in names and v is not None}
    if "given" in kwargs:
        kwargs["given"] = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in kwargs["given"].items()}
    if "stems" in kwargs:
        kwargs["stems"] = list(kwargs["stems"])
    if kwargs.get("region") is not None:
        kwargs["region"] = tuple(int(x) for x in kwargs["region"])
    dropped = sorted(set(payload) - names - {"job_id", "op"})
    if dropped:
        log.debug("fields the pipeline does not take: %s", dropped)
    request = GenerationRequest(**kwargs)
    progress(0, int(payload.get("steps") or 0), "encoding")  # also the first cancel check
    with torch.inference_mode():
        result = run_pipeline(bundle, request, _progress_adapter(progress))
    stems = {k: np.ascontiguousarray(np.asarray(v, dtype=np.float32)) for k, v in result.stems.items()}
    mix = getattr(result, "mix", None)
    return {
        "stems": stems,
        "mix": None if mix is None else np.ascontiguousarray(np.asarray(mix, dtype=np.float32)),
        "sample_rate": int(getattr(result, "sample_rate", 48_000)),
        "seed": getattr(result, "seed", payload.get("seed")),
        "manifest": dict(getattr(result, "manifest", {}) or {}),
    }
