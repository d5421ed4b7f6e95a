"""Evaluation suite (issue 4 section 5): signal estimators, metrics and the ``stemforge eval`` runner.

- :mod:`engine.eval.metrics`: log-spectral distance, multi-resolution STFT distance, SI-SDR, inpainting error and the
  seam measure (numpy only).
- :mod:`engine.eval.tempo`: onset strength, tempo and beat-grid estimation.
- :mod:`engine.eval.key`: chroma and Krumhansl-Schmuckler key/mode estimation.
- :mod:`engine.eval.stem_classifier`: a small stem-role classifier (softmax regression on log-mel statistics).
- :mod:`engine.eval.figures`: spectrogram PNGs for the model card (a tiny PNG writer, no matplotlib).
- :mod:`engine.eval.runner`: generation from held-out studio prompts and the model / upper / lower bound table.
"""
