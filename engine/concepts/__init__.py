"""Concepts: teach the model a new sound from reference audio (issue 5).

- :mod:`~engine.concepts.tokens`: names, identifier tokens, ``<NAME>`` expansion (torch-free)
- :mod:`~engine.concepts.index`: torch-free listing / deletion of concept files (used by the daemon)
- :mod:`~engine.concepts.store`: the concept file (safetensors: changed entries + token rows + metadata), library
- :mod:`~engine.concepts.data`: reference audio checks, clips, latents, neutral captions
- :mod:`~engine.concepts.trainer`: the shared diffusion training step on concept data
- :mod:`~engine.concepts.pivotal`: JEN-1 DreamStyler pivotal parameters tuning (+ the U-Net baselines)
- :mod:`~engine.concepts.textual_inversion`: textual inversion for text-to-music (Thomé et al.)
- :mod:`~engine.concepts.train`: ``train_concepts`` (CLI / daemon entry point)
- :mod:`~engine.concepts.apply`: apply / remove on a loaded model, ``run_with_concepts``
- :mod:`~engine.concepts.evaluate`: ``stemforge concept eval`` (audio / text alignment, baselines)

Nothing here is imported by ``engine/__init__``; import the submodule you need.
"""
