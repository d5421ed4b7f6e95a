"""Diffusion training on a GPU host that can take only small uploads and has no FluidSynth or text-encoder wheel.

On a GPU host with the project installed, ``stemforge train diffusion ... --device cuda`` is the command. This
script is for a borrowed GPU that receives at most ~60 MB per upload and nothing else: it moves exactly what
``stemforge train diffusion`` would compute its steps from (the latent cache, the frozen text encoder, the starting
U-Net) and the same :class:`engine.train.diffusion.DiffusionTrainer` does the steps there.

    pack     (here)  encode the corpus with the base model (the trainer's own latent cache), split the latents into
                     shards, save the frozen MiniLM text encoder and the base U-Net:  BUNDLE/{part*,text,unet}
    train    (GPU)   rebuild the latent set, load the text encoder and U-Net, train for a wall-clock budget with a
                     linear warm-up and a linear decay that ends at the step the budget allows (measured on the
                     first steps); write the EMA U-Net in shards of < 16 MB and a JSON log to OUT
    assemble (here)  put the EMA U-Net back into the base model and save a full checkpoint marked trained

The text encoder travels in float16 (the trainer's text cache keeps its states in float16 anyway); the latents
travel as the float16 cache the trainer writes. Nothing is re-rendered or re-encoded on the GPU host.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import queue
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

log = logging.getLogger("remote_train")
SHARD_BYTES = 15 * 1024 * 1024  # files that come back from the GPU host must stay under 16 MB


def _save_sharded(state: dict[str, torch.Tensor], out: Path, stem: str, limit: int) -> list[str]:
    from safetensors.torch import save_file

    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for k, v in state.items():
        nbytes = v.numel() * v.element_size()
        if shards[-1] and size + nbytes > limit:
            shards.append({})
            size = 0
        shards[-1][k] = v.detach().contiguous().cpu()
        size += nbytes
    names = []
    for i, shard in enumerate(shards):
        name = f"{stem}-{i:02d}.safetensors"
        save_file(shard, str(out / name))
        names.append(name)
    return names


def _load_sharded(folder: Path, stem: str) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    state: dict[str, torch.Tensor] = {}
    for path in sorted(folder.glob(f"{stem}-*.safetensors")):
        state.update(load_file(str(path)))
    if not state:
        raise SystemExit(f"no {stem}-*.safetensors in {folder}")
    return state


# ---- pack ------------------------------------------------------------------------------------------
def pack(args: argparse.Namespace) -> None:
    from engine.model import StemforgeModel
    from engine.train.diffusion import encode_corpus, open_corpus

    out = Path(args.bundle)
    model = StemforgeModel.from_pretrained(args.model)
    corpus = open_corpus(args.data, tuple(model.config.stems))
    latents = encode_corpus(model, corpus, args.cache, torch.device("cpu"))
    parts = max(1, int(args.parts))
    per = math.ceil(len(latents) / parts)
    for p in range(parts):
        d = out / f"part{p}"
        d.mkdir(parents=True, exist_ok=True)
        lo, hi = p * per, min(len(latents), (p + 1) * per)
        _save_sharded({f"z{i}": latents.latents[i].to(torch.float16) for i in range(lo, hi)}, d, "latents",
                      1 << 40)
    (out / "part0" / "index.json").write_text(json.dumps({
        "ids": latents.ids, "captions": latents.captions, "present": latents.present.tolist(),
        "harmony": [h.to_dict() if h is not None else None for h in latents.harmony] if latents.harmony else None,
        "config": model.config.to_dict(), "base_hash": model.hash}))
    text = out / "text"
    text.mkdir(parents=True, exist_ok=True)
    enc = model.text_encoder
    enc.model.half().save_pretrained(str(text / "minilm"), safe_serialization=True)
    enc.tokenizer.save_pretrained(str(text / "minilm"))
    _prune_vocabulary(text / "minilm", enc.tokenizer, latents.captions, tuple(model.config.stems))
    _save_sharded({k: v.to(torch.float16) for k, v in model.unet.state_dict().items()}, text, "unet", 1 << 40)
    log.info("bundle %s: %d items in %d parts, text encoder and U-Net", out, len(latents), parts)


WORD_EMBEDDINGS = "embeddings.word_embeddings.weight"


def _prompt_pieces(captions: list[str], stems: tuple[str, ...]) -> list[str]:
    """Every piece a training prompt is made of: the captions and every task prefix (WordPiece splits on spaces
    and punctuation, so a prompt's tokens are the union of its pieces' tokens)."""
    from itertools import combinations

    from engine.text.prompt import TASKS, task_prefix

    pieces = list(captions) + [""]
    for task in TASKS:
        for r in range(1, len(stems) + 1):
            for gen in combinations(stems, r):
                pieces.append(task_prefix(list(gen), [], task, stems=stems))
    return pieces


def _prune_vocabulary(folder: Path, tokenizer, captions: list[str], stems: tuple[str, ...]) -> None:
    """Keep only the word-embedding rows the training prompts can use (halves the upload); train() restores the
    full table with zero rows and refuses any prompt that would reach a dropped row."""
    from safetensors.torch import load_file, save_file

    used = set(tokenizer.all_special_ids)
    for piece in _prompt_pieces(captions, stems):
        used.update(tokenizer(piece)["input_ids"])
    ids = torch.tensor(sorted(used), dtype=torch.int64)
    path = folder / "model.safetensors"
    state = load_file(str(path))
    full = state.pop(WORD_EMBEDDINGS)
    state["kept_word_embeddings"] = full[ids].contiguous()
    state["kept_ids"] = ids
    save_file(state, str(folder / "pruned.safetensors"), metadata={"vocab_rows": str(full.shape[0])})
    path.unlink()
    log.info("text encoder: kept %d of %d word-embedding rows", len(ids), full.shape[0])


def _restore_vocabulary(folder: Path) -> torch.Tensor:
    from safetensors import safe_open
    from safetensors.torch import save_file

    path = folder / "pruned.safetensors"
    with safe_open(str(path), "pt") as f:
        rows = int(f.metadata()["vocab_rows"])
        state = {k: f.get_tensor(k) for k in f.keys()}
    kept, ids = state.pop("kept_word_embeddings"), state.pop("kept_ids")
    full = torch.zeros(rows, kept.shape[1], dtype=kept.dtype)
    full[ids] = kept
    state[WORD_EMBEDDINGS] = full
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    return ids


# ---- train (GPU host) ------------------------------------------------------------------------------
def _build_model(bundle: Path, index: dict):
    from engine.config import ModelConfig
    from engine.model import StemforgeModel

    kept = set(_restore_vocabulary(bundle / "text" / "minilm").tolist())
    cfg = ModelConfig.from_dict(index["config"])
    cfg = dataclasses.replace(cfg, text=dataclasses.replace(
        cfg.text, name_or_path=str(bundle / "text" / "minilm")))
    model = StemforgeModel.from_config(cfg)
    model.text_encoder.model.float()
    tokenizer, encode = model.text_encoder.tokenizer, model.encode_text

    def checked_encode(prompts: list[str]):
        for p in prompts:
            missing = set(tokenizer(p)["input_ids"]) - kept
            if missing:
                raise SystemExit(f"prompt {p!r} uses word-embedding rows that were not uploaded: {sorted(missing)}")
        return encode(prompts)

    model.encode_text = checked_encode
    state = {k: v.float() for k, v in _load_sharded(bundle / "text", "unet").items()}
    model.unet.load_state_dict(state, strict=True)
    return model


def _harmony(rows: list | None) -> list | None:
    """The packed chords (Harmony.to_dict rows) back as Harmony objects."""
    from engine.text.chords import Harmony

    if not rows:
        return None
    return [Harmony(tuple(tuple(c) for c in r["pitch_classes"]), float(r["beats_per_chord"])) if r else None
            for r in rows]


def train(args: argparse.Namespace) -> None:
    from engine.train.diffusion import DiffusionTrainer, DiffusionTrainOptions, LatentSet, lr_factor

    bundle, out = Path(args.bundle), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.monotonic()
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = True
    index = json.loads((bundle / "part0" / "index.json").read_text())
    zs: dict[str, torch.Tensor] = {}
    for part in sorted(bundle.glob("part*")):
        zs.update(_load_sharded(part, "latents"))
    n = len(index["ids"])
    latents = LatentSet([zs[f"z{i}"].float() for i in range(n)], torch.tensor(index["present"], dtype=torch.bool),
                        index["captions"], index["ids"], _harmony(index.get("harmony")))
    model = _build_model(bundle, index)
    opts = DiffusionTrainOptions(out=str(out / "run"), steps=10 ** 9, batch=args.batch, lr=args.lr,
                                 warmup=args.warmup, joint_share=args.joint_share, device=args.device,
                                 seed=args.seed, ema_decay=args.ema_decay)
    trainer = DiffusionTrainer(model, latents, opts)
    model.text_encoder.model.to(trainer.device)
    # the LR schedule reads opts.steps at every step: set it once the first steps have been timed
    trainer.scheduler = torch.optim.lr_scheduler.LambdaLR(
        trainer.optimizer, lambda s: lr_factor(s, trainer.opts.steps, trainer.opts.warmup))

    batches: queue.Queue = queue.Queue(maxsize=6)
    stop = threading.Event()

    def producer() -> None:  # crops, task plans, noising and text states, one step ahead of the GPU
        step = 0
        while not stop.is_set():
            item = trainer.make_batch(step)
            while not stop.is_set():
                try:
                    batches.put(item, timeout=0.5)
                    break
                except queue.Full:
                    continue
            step += 1

    def step_once() -> float:
        return trainer.train_step(prepared=batches.get())

    def snapshot(tag: str) -> None:
        state = {k: v.float() for k, v in trainer.ema.shadow.items()}
        for old in out.glob("ema-*.safetensors"):
            old.unlink()
        _save_sharded(state, out, "ema", SHARD_BYTES)
        (out / "log.json").write_text(json.dumps(record))
        log.info("snapshot %s at step %d", tag, trainer.step)

    thread = threading.Thread(target=producer, daemon=True)
    thread.start()
    record: dict = {"batch": args.batch, "lr": args.lr, "warmup": args.warmup, "joint_share": args.joint_share,
                    "items": n, "frames": trainer.frames, "device": torch.cuda.get_device_name()
                    if torch.cuda.is_available() else "cpu", "losses": []}
    losses: list[float] = []
    timing_steps = args.timing_steps
    for _ in range(timing_steps):  # warm-up steps (inside the LR warm-up) that also time a step
        losses.append(step_once())
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
    t_timed = time.monotonic()
    for _ in range(timing_steps):
        losses.append(step_once())
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
    sps = (time.monotonic() - t_timed) / timing_steps
    budget = args.seconds - (time.monotonic() - t_start)
    total = trainer.step + max(1, int(budget * 0.93 / sps))
    trainer.opts.steps = total
    record.update({"seconds_per_step_measured": sps, "planned_steps": total, "setup_seconds": t_timed - t_start})
    log.info("%.4f s/step measured; %d steps planned in %.0f s", sps, total, budget)
    deadline = t_start + args.seconds
    next_snap = time.monotonic() + args.snapshot_seconds
    while trainer.step < total and time.monotonic() < deadline:
        losses.append(step_once())
        if not math.isfinite(losses[-1]):
            raise SystemExit(f"loss became {losses[-1]} at step {trainer.step}")
        if trainer.step % 100 == 0:
            window = losses[-100:]
            record["losses"].append([trainer.step, sum(window) / len(window)])
            log.info("step %d/%d loss %.4f lr %.2e", trainer.step, total, record["losses"][-1][1],
                     trainer.scheduler.get_last_lr()[0])
        if time.monotonic() > next_snap:
            record["steps"] = trainer.step
            snapshot("periodic")
            next_snap = time.monotonic() + args.snapshot_seconds
    stop.set()
    record.update({"steps": trainer.step, "train_seconds": time.monotonic() - t_start,
                   "final_window_loss": sum(losses[-500:]) / len(losses[-500:])})
    snapshot("final")


# ---- assemble (here) -------------------------------------------------------------------------------
def assemble(args: argparse.Namespace) -> None:
    from engine.model import StemforgeModel

    model = StemforgeModel.from_pretrained(args.model)
    state = _load_sharded(Path(args.run), "ema")
    model.unet.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    record = json.loads((Path(args.run) / "log.json").read_text())
    training = {"kind": "diffusion", "continued_from": str(args.model), "steps": record["steps"],
                "batch": record["batch"], "lr": record["lr"], "frames": record["frames"],
                "joint_share": record["joint_share"], "items": record["items"], "device": record["device"],
                "seconds": record["train_seconds"], "final_loss": record["final_window_loss"],
                "script": "scripts/remote_train.py"}
    digest = model.save_pretrained(args.out, training=training, trained=True)
    print(f"{args.out}: hash {digest[:12]}")


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack")
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--cache", required=True, help="folder for the trainer's latent cache")
    p.add_argument("--bundle", required=True)
    p.add_argument("--parts", type=int, default=2)
    t = sub.add_parser("train")
    t.add_argument("--bundle", required=True)
    t.add_argument("--out", required=True)
    t.add_argument("--seconds", type=float, required=True, help="wall-clock budget, setup included")
    t.add_argument("--batch", type=int, default=64)
    t.add_argument("--lr", type=float, default=3e-4)
    t.add_argument("--warmup", type=int, default=100)
    t.add_argument("--joint-share", type=float, default=0.5)
    t.add_argument("--ema-decay", type=float, default=0.999)
    t.add_argument("--seed", type=int, default=7)
    t.add_argument("--device", default="auto")
    t.add_argument("--timing-steps", type=int, default=20)
    t.add_argument("--snapshot-seconds", type=float, default=150.0)
    a = sub.add_parser("assemble")
    a.add_argument("--model", required=True)
    a.add_argument("--run", required=True)
    a.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    {"pack": pack, "train": train, "assemble": assemble}[args.cmd](args)


if __name__ == "__main__":
    main()
