"""An operation run inside the engine worker by the ``op`` hook (test of :func:`daw_bridge.engine_runner.run`)."""

from __future__ import annotations

from typing import Any


def unet_parameters(bundle: Any, payload: dict[str, Any], progress: Any) -> dict[str, Any]:
    """Count the loaded U-Net's parameters, reporting one progress step per module."""
    modules = list(bundle.unet.children())
    total = 0
    for i, module in enumerate(modules):
        total += sum(p.numel() for p in module.parameters(recurse=True))
        progress(i + 1, len(modules), "training")
    return {"parameters": total, "echo": payload["echo"]}
