"""Manifests (and the layouts read into them), subject-wise splits, 2D / 2.5D slicing, labelled slices and
pixel samplers; numpy only (the torch batches are built in ``train.samples``)."""
