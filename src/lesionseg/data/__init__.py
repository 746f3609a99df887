"""Manifests (and the layouts read into them), the preprocessing cache of their cases, subject-wise splits,
2D / 2.5D slicing, labelled slices and pixel samplers; numpy only (torch batches: ``train.samples``)."""
