"""Training: shared utilities (:mod:`engine.train.common`) and one trainer module per model."""
