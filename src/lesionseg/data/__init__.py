"""Manifests, subject-wise splits, 2D / 2.5D slicing, pixel samplers and the torch Dataset."""
