"""`stemforge eval` with the chroma guide restricted to some stems and/or another t_min (a sweep tool, not a
product option: the pipeline guides bass, instrument and melody from DEFAULT_T_MIN).

    python scripts/eval_guide_variant.py bass 0.5 eval --n 16 --steps 20 --model MODEL --chroma-guidance 2 ...
    python scripts/eval_guide_variant.py bass,instrument,melody 0.3 eval --n 16 ...
"""

import sys

import engine.diffusion.chroma_guidance as cg
from daw_bridge.cli import main

if __name__ == "__main__":
    stems, t_min = sys.argv[1].split(","), float(sys.argv[2])
    unknown = set(stems) - {s[0] for s in cg.GUIDED_STEMS}
    if unknown:
        sys.exit(f"unknown guided stems {sorted(unknown)}; known: {[s[0] for s in cg.GUIDED_STEMS]}")
    cg.GUIDED_STEMS = tuple(s for s in cg.GUIDED_STEMS if s[0] in stems)
    cg.make_chroma_guide.__defaults__ = (*cg.make_chroma_guide.__defaults__[:-1], t_min)  # t_min: the last
    sys.exit(main(sys.argv[3:]))
