"""--skull-strip: with the [skullstrip] extra (deepbet) a phantom with skull segments with the mask inside the
brain and the step in the sidecar; without it, a one-line error naming the extra."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np

from lesionseg.cli.main import main
from lesionseg.preprocess.skullstrip import skullstrip_available


def test_skull_strip_keeps_the_mask_inside_the_brain(phantom_dir: Path, tmp_path: Path, capsys) -> None:
    case = sorted(p for p in phantom_dir.iterdir() if p.is_dir())[0]
    out = tmp_path / "mask.nii.gz"
    code = main(
        ["segment", str(case / "flair.nii.gz"), str(case / "t1.nii.gz"), "-o", str(out), "--skull-strip"]
    )
    err = capsys.readouterr().err.strip().splitlines()
    if not skullstrip_available():
        assert code == 2 and len(err) == 1 and "lesionseg[skullstrip]" in err[0]
        assert not out.exists()
        return
    assert code == 0
    mask = np.asarray(nib.load(out).dataobj) > 0
    brain = np.asarray(nib.load(case / "brainmask.nii.gz").dataobj) > 0
    sidecar = json.loads((tmp_path / "mask.json").read_text())
    step = next(s for s in sidecar["steps"] if s["step"] == "skull_strip")
    assert step["tool"] == "deepbet" and step["brain_ml"] > 0
    # every predicted voxel lies in the phantom's brain (dilated by one voxel for the stripping's edge)
    from scipy import ndimage

    assert not (mask & ~ndimage.binary_dilation(brain)).any()
