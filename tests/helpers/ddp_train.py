"""Run under ``torchrun --nproc-per-node 2``: train a tiny model with DistributedDataParallel (gloo) and
write each rank's final weights and loss history, so the test can compare ranks."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from lesionseg.config.train import resolve_train_config
from lesionseg.data.cache import PreprocessCache
from lesionseg.data.manifest import load_manifest
from lesionseg.train import distributed
from lesionseg.train.run import preprocessed_cases
from lesionseg.train.trainer import Trainer


def main(phantom_dir: str, out: str) -> None:
    distributed.init_from_environment()
    rank, world = distributed.rank_and_world()
    cfg = resolve_train_config(
        "resunet-focal",
        "cpu",
        overrides=[
            "epochs=4",
            "steps_per_epoch=4",
            "batch_size=4",
            "width=4",
            "patch_size=[32,32]",
            "lr=3e-3",
            "val_max_slices=2",
            "preprocess.target_size=[64,64]",
            "threads=1",
        ],
    )
    manifest = load_manifest(Path(phantom_dir) / "manifest.json")
    cache = PreprocessCache(Path(out) / "cache")
    if rank == 0:  # fill the cache once, before the other rank reads it
        preprocessed_cases(manifest, phantom_dir, manifest.subjects, cfg, cache)
    torch.distributed.barrier()
    cases = preprocessed_cases(manifest, phantom_dir, manifest.subjects, cfg, cache)
    trainer = Trainer(cfg, cases[:2], cases[2:], sorted(manifest.label_values), 2, Path(out) / "model")
    result = trainer.fit(progress=False)
    net = trainer.model.module
    # parameters (BatchNorm running statistics are per rank between DDP's buffer broadcasts from rank 0)
    torch.save({k: v.detach().clone() for k, v in net.named_parameters()}, Path(out) / f"rank{rank}.pt")
    (Path(out) / f"rank{rank}.json").write_text(
        json.dumps({"world": world, "history": result.history, "entries": len(trainer.batcher)})
    )
    distributed.shutdown()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
