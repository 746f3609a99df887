"""Slice-wise inference, ensembles, test-time augmentation, post-processing and export."""
