"""Training: the loop, budget and schedule, calibration, checkpoints written with the resolved config, and
the training road that ``lesionseg train``, ``lesionseg.train`` and ``cv`` share (:mod:`.averaged`)."""
