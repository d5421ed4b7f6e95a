"""Musical attributes read off the prompt text: tempo (BPM) and key (tonic + mode).

The U-Net is conditioned on them directly (a global embedding added to the timestep embedding, see
:class:`engine.models.unet.AttributeEmbedding`) besides the text states, as Mustango (Melechovsky et al. 2023)
does with the tempo and key it extracts from captions: a tiny text encoder and U-Net learn "100 bpm" far faster
as a number than as two word pieces inside a sentence. The same parser runs on training captions and on user
prompts, so what the model was trained on and what a prompt gives always agree; a prompt without a tempo or a key
gets the learned "unknown" embedding (the caption-dropout branch of classifier-free guidance trains it).

    prompt_attributes("funk at 100 bpm in E minor")  -> (100.0, 16)     # key class = pitch class + 12 * minor
    prompt_attributes("[drums generation] lo-fi")    -> (None, None)
    attribute_tensor(["... 92 BPM ... key of Bb major"]) -> tensor([[92., 10.]])   # missing: nan / -1
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from engine.data.studio.theory import pitch_class
from engine.text.prompt import BPM_IN_TEXT, KEY_IN_TEXT, normalize_key

NUM_KEYS = 24  # 12 tonics x {major, minor}
UNKNOWN_KEY = -1
BPM_MIN, BPM_MAX = 20.0, 400.0



def parse_bpm(text: str) -> float | None:
    """The first ``<number> bpm`` in ``text`` (20..400), or None."""
    for m in BPM_IN_TEXT.finditer(text or ""):
        bpm = float(m.group(1))
        if BPM_MIN <= bpm <= BPM_MAX:
            return bpm
    return None


def parse_key(text: str) -> int | None:
    """The first ``<tonic>[accidental] major|minor`` in ``text`` as a class in 0..23 (pitch class + 12 * minor);
    spelled as :func:`engine.text.prompt.normalize_key` reads it, pitch classes from the studio's theory."""
    m = KEY_IN_TEXT.search(text or "")
    if not m:
        return None
    tonic, mode = normalize_key(m.group(0)).split()
    return pitch_class(tonic) + (12 if mode == "minor" else 0)


def prompt_attributes(text: str) -> tuple[float | None, int | None]:
    return parse_bpm(text), parse_key(text)


def attribute_tensor(prompts: Sequence[str]) -> Tensor:
    """``(B, 2)`` float32: column 0 the BPM (nan when the prompt names none), column 1 the key class (-1 when none)."""
    rows = []
    for p in prompts:
        bpm, key = prompt_attributes(p)
        rows.append([math.nan if bpm is None else bpm, float(UNKNOWN_KEY if key is None else key)])
    return torch.tensor(rows, dtype=torch.float32).reshape(len(rows), 2)
