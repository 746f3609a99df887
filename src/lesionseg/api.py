"""The public Python API: ``lesionseg.segment`` and ``lesionseg.compare`` (here), ``lesionseg.evaluate``
and ``lesionseg.train``.

Each is the Python twin of a command: :func:`segment` of ``lesionseg segment`` (same mask, voxel for
voxel); ``lesionseg.evaluate`` (:func:`lesionseg.evaluate.pair.evaluate_masks`) of one row of ``lesionseg
evaluate``; ``lesionseg.train`` (:func:`lesionseg.train.run.train_method`) of ``lesionseg train``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from lesionseg.errors import LesionsegError
from lesionseg.io import Volume

if TYPE_CHECKING:
    from lesionseg.config.change import ChangeOptions
    from lesionseg.infer.compare import StudyComparison
    from lesionseg.infer.predictor import Predictor


def segment(
    flair: str | Path | Volume,
    t1: str | Path | Volume | None = None,
    *,
    model: str | Path | Sequence[str | Path] | Predictor | None = None,
    device: str = "auto",
    mask: str | Path | Volume | None = None,
    register: bool = True,
    skull_strip: str = "auto",
    threshold: float | None = None,
    min_lesion_mm3: float | None = None,
    tta: bool | None = None,
    out: str | Path | None = None,
) -> Volume:
    """Segment one case; returns the label Volume (uint8, 0/1 for a binary model) on the FLAIR's grid.

    The same road as ``lesionseg segment FLAIR [T1] -o OUT`` (:mod:`lesionseg.infer.case_road`), with the
    same defaults, so both give the same mask voxel for voxel: a T1 on another grid is registered to the
    FLAIR (``register``), a scan with skull is found and stripped (``skull_strip`` "auto", "on", "off").
    ``flair``, ``t1``: file paths or :class:`lesionseg.Volume` s; a Volume must carry its real affine (the
    images are reoriented to RAS from it, so a made-up affine changes the mask). ``t1`` None: FLAIR alone.
    ``model``: None = the bundled model for the channels given (FLAIR + T1, or FLAIR alone; see
    ``lesionseg/models/MODEL_CARD.md``), a checkpoint path, several paths (an ensemble), a model folder,
    or a :class:`lesionseg.Predictor`. ``threshold``, ``min_lesion_mm3``, ``tta``: None = the model's own.
    ``device``: "auto" = CUDA when available. ``mask``: an optional brain mask on the FLAIR's grid.
    ``out``: also write the mask there (``.nii.gz``) with its JSON sidecar, as the command does.

    >>> import lesionseg, tempfile, pathlib
    >>> from lesionseg.phantom import write_phantom_dataset
    >>> manifest = write_phantom_dataset(pathlib.Path(tempfile.mkdtemp()) / "data", 1, seed=0,
    ...     shape=(48, 56, 32), spacing=(3.0, 3.0, 4.0))
    >>> case = manifest.parent / "phantom_000"
    >>> labels = lesionseg.segment(case / "flair.nii.gz", case / "t1.nii.gz")
    >>> labels.kind, labels.shape == lesionseg.read_volume(case / "flair.nii.gz").shape
    ('label', True)
    """
    from lesionseg.infer.case_road import segment_case, segment_case_to_files
    from lesionseg.infer.files import InferenceOptions, OutputPaths, load_predictor
    from lesionseg.infer.predictor import Predictor
    from lesionseg.io import read_volume

    given = [flair] if t1 is None else [flair, t1]
    if isinstance(model, Predictor):
        predictor = model
    else:
        models = None if model is None else [model] if isinstance(model, (str, Path)) else list(model)
        options = InferenceOptions(threshold, min_lesion_mm3, tta, device=device)
        predictor = load_predictor(models, options, ("FLAIR",) if t1 is None else ("FLAIR", "T1"))
    names = predictor.channel_names
    if len(given) != len(names):
        raise LesionsegError(
            f"the model takes {len(names)} channel(s) ({', '.join(names)}); {len(given)} given"
        )
    channels = dict(zip(names, given, strict=True))
    road = {"register": register, "skull_strip": skull_strip}
    if out is None:
        prediction, _ = segment_case(predictor, channels, mask, **road)
        return prediction.label
    out = Path(out)
    if not out.name.lower().endswith((".nii.gz", ".nii")):
        raise LesionsegError("output must be a .nii.gz or .nii file", out)
    sidecar = out.with_name(out.name.removesuffix(".gz").removesuffix(".nii") + ".json")
    segment_case_to_files(predictor, channels, OutputPaths.beside(out), sidecar, mask, **road)
    return read_volume(out, "label")


def compare(
    flair1: str | Path,
    flair2: str | Path,
    *,
    t1: Sequence[str | Path] | None = None,
    masks: Sequence[str | Path] | None = None,
    model: str | Path | Sequence[str | Path] | Predictor | None = None,
    skull_strip: bool | str = "auto",
    options: ChangeOptions | None = None,
    device: str = "auto",
    out_dir: str | Path | None = None,
    overwrite: bool = False,
) -> StudyComparison:
    """Lesion change between two studies of one patient (``lesionseg compare``): the change map, both lesion
    masks and the lesion table on study 2's native grid (:class:`lesionseg.infer.compare.StudyComparison`);
    with ``out_dir``, its files are written there as the command writes them. ``t1``/``masks``: pairs
    (study 1, study 2); ``options``: :class:`lesionseg.config.change.ChangeOptions`. See docs/compare.md."""
    from lesionseg.infer.compare import compare_studies, write_comparison
    from lesionseg.infer.files import InferenceOptions

    result = compare_studies(
        flair1,
        flair2,
        t1=t1,
        masks=masks,
        model=model,
        skull_strip=skull_strip,
        options=options,
        inference=InferenceOptions(device=device),
    )
    if out_dir is not None:
        write_comparison(result, out_dir, overwrite)
    return result
