"""Training data: the synthetic studio (``engine.data.studio``), stem-folder datasets and segmenting."""
