"""Scoring: a pair of masks (:mod:`.pair`, the public ``lesionseg.evaluate``), a folder of predictions
against a manifest's references (:mod:`.folder`, ``lesionseg evaluate``), subject-wise cross-validation
(:mod:`.cv`, ``lesionseg cv``; it trains through :mod:`lesionseg.train.averaged`) and labelled-slice scoring
(:mod:`.labelled_slices`). Every form returns metric rows that :mod:`lesionseg.report` renders."""
