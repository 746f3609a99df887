"""Ship the bundled FLAIR model (``lesionseg/models/ms_flair``) from the leave-one-site-out runs of
``experiments/three_sites.py``: nnU-Net's cross-validation ensemble. Each of the three members was trained on
every subject outside one site (together they use all 8 subjects); the threshold and minimum lesion size are
chosen on the pooled out-of-fold probabilities of all 10 scans (never one subject), and 0.5 / 0 is kept
unless the pooled choice beats it there by ``pooled_margin`` mean Dice (``three_sites.json``).

    python experiments/ship_flair_model.py [--row flair-5m]
"""

from __future__ import annotations

import argparse
import datetime
import json
import shutil
import tempfile
from pathlib import Path

from three_sites import CONFIG, MANIFEST, POOLED_MARGIN, REPO, dice_table, pooled_choice

from lesionseg.data.manifest import load_manifest
from lesionseg.infer.ensemble_file import write_ensemble_calibration
from lesionseg.nets.checkpoint import save_checkpoint, shipped_state

TARGET = REPO / "src" / "lesionseg" / "models" / "ms_flair"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--row", default="flair-5m")
    parser.add_argument("--runs", type=Path, default=REPO / "runs" / "three_sites")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    args = parser.parse_args()
    manifest = load_manifest(MANIFEST)
    row_dir = args.runs / "losite" / args.row
    splits = json.loads((args.runs / "losite" / "splits.json").read_text())["folds"]
    chosen = pooled_choice(
        dice_table(args.runs, "losite", args.row, manifest, args.data), set(manifest.subjects)
    )
    staging = Path(tempfile.mkdtemp(prefix=".ms_flair-", dir=TARGET.parent))
    members = []
    for fold in splits:
        k = fold["fold"]
        trained = {
            "recipe": args.row,
            "overrides": CONFIG["rows"][args.row],
            "scheme": "leave-one-site-out member",
            "train_subjects": fold["train"],
            "held_out_subjects": fold["test"],
            "date": str(datetime.date.today()),
        }
        state = shipped_state(row_dir / f"fold_{k}" / "best.pt", trained)
        members.append(save_checkpoint(state, staging / f"fold_{k}" / "best.pt"))
    write_ensemble_calibration(
        staging,
        members,
        {
            **chosen,
            "rule": f"pooled out-of-fold choice kept only if it beats 0.5 / 0 by {POOLED_MARGIN} Dice",
        },
    )
    if TARGET.exists():
        shutil.rmtree(TARGET)
    staging.chmod(0o755)
    staging.rename(TARGET)
    print(f"wrote {TARGET}: {chosen}")


if __name__ == "__main__":
    main()
