"""DistributedDataParallel on CPU: 2 processes (gloo) keep identical weights and the loss goes down."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

HELPER = Path(__file__).parent / "helpers" / "ddp_train.py"


@pytest.mark.slow
def test_two_process_ddp_keeps_ranks_identical_and_learns(phantom_dir: Path, tmp_path: Path) -> None:
    torchrun = shutil.which("torchrun")
    command = [torchrun] if torchrun else [sys.executable, "-m", "torch.distributed.run"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1"}
    done = subprocess.run(
        [
            *command,
            "--nproc-per-node",
            "2",
            "--master-addr",
            "127.0.0.1",
            "--master-port",
            "29517",
            str(HELPER),
            str(phantom_dir),
            str(tmp_path),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rank0, rank1 = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key
    info = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert info[0]["world"] == 2
    history = info[0]["history"]
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    # each rank drew from its own share of the training slices
    assert info[0]["entries"] + info[1]["entries"] >= 2
