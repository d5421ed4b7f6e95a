"""scripts/remote_train.py: pack -> train -> assemble round trip on a small model and a 2-item studio corpus (CPU)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from engine.config import AutoencoderConfig, ModelConfig, UNetConfig
from engine.data.studio.render import RenderSettings, item_harmony, render_corpus
from engine.model import StemforgeModel

ROOT = Path(__file__).resolve().parents[3]
SMALL = ModelConfig(
    name="test-small", whitened_dim=8, segment_seconds=0.2,
    autoencoder=AutoencoderConfig(latent_dim=8, hidden=32, encoder_depth=1, decoder_depth=1),
    unet=UNetConfig(channels=(64, 128), blocks_per_level=1, attention_levels=(False, True), heads=2,
                    cross_attention_dim=32, time_embed_dim=32),
)


@pytest.fixture(scope="module")
def remote_train():
    spec = importlib.util.spec_from_file_location("remote_train", ROOT / "scripts" / "remote_train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_pack_train_assemble_round_trip(tmp_path, tiny_model, remote_train):
    base = StemforgeModel.from_config(SMALL, seed=3)
    base.whitening.update(torch.randn(4, 8, 200, generator=torch.Generator().manual_seed(1), dtype=torch.float64))
    base.whitening.finalize()
    base.save_pretrained(tmp_path / "base", trained=True)
    render_corpus(tmp_path / "data", 2, RenderSettings(seconds=1.0, renderer="numpy"), seed=4)
    bundle, out = tmp_path / "bundle", tmp_path / "out"

    remote_train.main(["pack", "--model", str(tmp_path / "base"), "--data", str(tmp_path / "data"),
                       "--cache", str(tmp_path / "cache"), "--bundle", str(bundle), "--parts", "2"])
    index = json.loads((bundle / "part0" / "index.json").read_text())
    assert len(index["ids"]) == 2 and index["config"]["name"] == "test-small"
    rows = [json.loads(line) for line in (tmp_path / "data" / "metadata.jsonl").read_text().splitlines()]
    assert [h["pitch_classes"] for h in index["harmony"]] == [[list(c) for c in item_harmony(r).chords] for r in rows]
    assert remote_train._harmony(index["harmony"]) == [item_harmony(r) for r in rows]  # the chords travel
    assert [len(load_file(str(p))) for p in sorted(bundle.glob("part*/latents-*.safetensors"))] == [1, 1]
    pruned = load_file(str(bundle / "text" / "minilm" / "pruned.safetensors"))
    assert not (bundle / "text" / "minilm" / "model.safetensors").exists()
    kept = pruned["kept_ids"]
    assert 20 < len(kept) < 1000 and pruned["kept_word_embeddings"].dtype == torch.float16

    remote_train.main(["train", "--bundle", str(bundle), "--out", str(out), "--seconds", "6", "--batch", "2",
                       "--device", "cpu", "--timing-steps", "2", "--warmup", "2"])
    record = json.loads((out / "log.json").read_text())
    assert record["steps"] >= 4 and record["items"] == 2 and record["planned_steps"] >= record["steps"]
    shards = sorted(out.glob("ema-*.safetensors"))
    assert shards and all(p.stat().st_size < remote_train.SHARD_BYTES + 4096 for p in shards)

    # the restored text encoder computes what the full one does (float16 weights), and refuses other words
    model = remote_train._build_model(bundle, index)
    caption = index["captions"][0]
    ours, mask = model.encode_text([f"[bass generation] {caption}"])
    ref, ref_mask = tiny_model.text_encoder.encode([f"[bass generation] {caption}"])
    assert torch.equal(mask, ref_mask)
    assert float((ours - ref).abs().max()) < 2e-2 * float(ref.abs().max())
    with pytest.raises(SystemExit, match="not uploaded"):
        model.encode_text(["zebra quantum"])

    remote_train.main(["assemble", "--model", str(tmp_path / "base"), "--run", str(out),
                       "--out", str(tmp_path / "trained")])
    trained = StemforgeModel.from_pretrained(tmp_path / "trained")
    ema = {}
    for p in shards:
        ema.update(load_file(str(p)))
    state = trained.unet.state_dict()
    assert set(ema) <= set(state) and all(torch.equal(state[k].float(), v) for k, v in ema.items())
    assert trained.trained and trained.meta["training"]["steps"] == record["steps"]
    assert not torch.equal(state[next(iter(ema))], base.unet.state_dict()[next(iter(ema))])
