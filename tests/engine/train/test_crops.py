"""CropSampler: exact crop shapes, deterministic evaluation clips, picking up renders added later."""

import numpy as np
import pytest
import torch

from engine.train.crops import CropSampler
from stem_renders import write_item
from protocol.errors import InvalidArgument



@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("renders")
    for i in range(2):
        write_item(root / "train" / f"item{i}", i)
    return root


def test_crop_sampler_shapes(data) -> None:
    sampler = CropSampler(data / "train")
    assert len(sampler) == 10  # 2 items x (4 stems + mix)
    batch = sampler.sample(3, 4801, np.random.default_rng(0))
    assert batch.shape == (3, 2, 4801) and batch.dtype == torch.float32
    clips = sampler.fixed_clips(4, 30000)  # longer than a file (24000): zero-padded
    assert clips.shape == (4, 2, 30000)
    assert torch.equal(clips, sampler.fixed_clips(4, 30000))  # deterministic
    with pytest.raises(InvalidArgument):
        CropSampler(data / "nothing-here")


def test_crop_sampler_refresh_picks_up_new_renders(tmp_path) -> None:
    write_item(tmp_path / "c" / "a", 0, seconds=0.1)
    sampler = CropSampler(tmp_path / "c")
    assert len(sampler) == 5
    write_item(tmp_path / "c" / "b", 1, seconds=0.1)
    write_item(tmp_path / "c" / ".tmp-c", 2, seconds=0.1)  # a render in progress is ignored
    assert sampler.refresh() == 5
    assert len(sampler) == 10 and all(".tmp" not in str(p) for p in sampler.files)
    assert sampler.refresh() == 0
