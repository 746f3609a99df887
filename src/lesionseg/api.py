"""The public Python API: ``lesionseg.segment``, ``lesionseg.compare``, ``lesionseg.evaluate`` and
``lesionseg.train``.

Each is the Python twin of a command, on the same road: :func:`segment` of ``lesionseg segment`` (same
mask, voxel for voxel); :func:`evaluate` of one row of ``lesionseg evaluate``; :func:`train` of
``lesionseg train`` (same configs, member folders and calibration).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from lesionseg.errors import LesionsegError
from lesionseg.io import Volume

if TYPE_CHECKING:
    import numpy as np

    from lesionseg.config.change import ChangeOptions
    from lesionseg.infer.compare import StudyComparison
    from lesionseg.infer.predictor import Predictor
    from lesionseg.train.averaged import AveragedModel


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


def evaluate(
    pred: str | Path | Volume | np.ndarray,
    ref: str | Path | Volume | np.ndarray,
    spacing: Sequence[float] | None = None,
) -> dict[str, float | int]:
    """Every metric of a predicted mask against a reference mask, in mm (one row of ``lesionseg
    evaluate``): :func:`lesionseg.evaluate.pair.evaluate_masks`, whose docstring gives the rules."""
    from lesionseg.evaluate.pair import evaluate_masks

    return evaluate_masks(pred, ref, spacing)


def train(  # noqa: PLR0913
    manifest: str | Path,
    root: str | Path,
    out: str | Path,
    *,
    method: str | None = None,
    profile: str = "cpu",
    config: dict | str | Path | None = None,
    overrides: Sequence[str] = (),
    seed: int | None = None,
    seeds: Sequence[int] | None = None,
    budget: float | None = None,
    steps: int | None = None,
    device: str | None = None,
    fold: int | None = None,
    folds: int = 5,
    splits: str | Path | None = None,
    cache: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> AveragedModel:
    """Train a model on a manifest's subjects into ``out``, as ``lesionseg train`` does (one road:
    :func:`lesionseg.train.averaged.train_from_manifest`): the same configs, member folders, validation
    subjects and calibration of the average.

    Each argument is the command's option of that name: ``method`` (None: the ``lesion-unet`` recipe),
    ``profile`` ("cpu" or "paper"), ``config`` (TrainConfig values: a dict or a JSON file), ``overrides``
    (``--set``: "key=value", e.g. "width=8"), ``seed`` (one network) or ``seeds`` (one network per seed,
    averaged; neither: the method's default, lesion-unet's seeds 0 1 2), ``budget`` (seconds per network),
    ``steps`` (a fixed step count), ``device`` ("auto", "cpu", "cuda"), ``fold`` / ``folds`` / ``splits``
    (train on a fold of a subject-wise split; otherwise ``val_fraction`` of the subjects validate),
    ``cache`` (default ``out/cache``), ``resume`` / ``overwrite`` (an earlier run in ``out`` is refused
    without one of them), ``progress`` (progress bars). Returns the members' configs, folders and results
    (``.checkpoints``: their best.pt) and the average's calibration (``ensemble_calibration.json`` in
    ``out``; ``lesionseg.segment(..., model=out)`` and ``lesionseg predict --model out`` use the folder).

    >>> import lesionseg, tempfile, pathlib
    >>> from lesionseg.phantom import write_phantom_dataset
    >>> work = pathlib.Path(tempfile.mkdtemp())
    >>> manifest = write_phantom_dataset(
    ...     work / "data", 3, seed=0, shape=(48, 56, 32), spacing=(3.0, 3.0, 4.0))
    >>> model = lesionseg.train(manifest, manifest.parent, work / "run", seeds=[0, 1], progress=False,
    ...     overrides=["steps=2", "budget_s=null", "evaluations=1", "width=4"])
    >>> model.folders, all(path.is_file() for path in model.checkpoints)
    (['seed_0', 'seed_1'], True)
    >>> (work / "run" / "ensemble_calibration.json").is_file()
    True
    """
    from lesionseg.config.train import DEFAULT_METHOD, read_config_file, resolve_member_configs
    from lesionseg.train.averaged import train_from_manifest

    if config is not None and not isinstance(config, dict):
        config = read_config_file(config)
    configs = resolve_member_configs(
        method or DEFAULT_METHOD, profile, config, overrides, seed, seeds, budget, steps, device
    )
    return train_from_manifest(
        configs,
        manifest,
        root,
        out,
        fold=fold,
        folds=folds,
        splits=splits,
        cache=cache,
        resume=resume,
        overwrite=overwrite,
        progress=progress,
    )
