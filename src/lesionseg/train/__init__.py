"""Training loop, checkpoints and subject-wise cross-validation."""
