"""Runs inside nnU-Net's own virtual environment (made by benchmarks/nnunet_ms.py); never imports lesionseg.

    python nnunet_driver.py install-trainer            # nnUNetTrainer_CPUBudget into the nnunetv2 package
    python nnunet_driver.py train DATASET FOLD BUDGET_S
    python nnunet_driver.py predict DATASET FOLD OUT_DIR FLAIR,T1[,...] ...   (one channel list per case)

The trainer is nnU-Net v2's default ``nnUNetTrainer`` (its plans, network, losses, augmentation, sampling with
a third of the patches on foreground, SGD + poly schedule) with only the length cut to a CPU-time budget:
epochs of ``ITERATIONS`` iterations (a fifth as many validation iterations); the first epoch is timed on
this process's CPU clock and the epoch count set to what fits the budget, and the poly schedule ends at the
last of them. nnU-Net's final full-volume validation is skipped (the benchmark predicts the test scans
itself). One torch thread, data augmentation in the main process (``nnUNet_n_proc_DA=0``), so the CPU
clock counts all the work.
"""

from __future__ import annotations

import sys
from pathlib import Path

ITERATIONS = 5

TRAINER = '''"""nnU-Net's default trainer cut to a CPU-time budget (lesionseg benchmarks/nnunet_driver.py)."""
import os
import time

import torch

from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer


class nnUNetTrainer_CPUBudget(nnUNetTrainer):
    def __init__(self, plans, configuration, fold, dataset_json, device=torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.budget_s = float(os.environ.get("LESIONSEG_NNUNET_BUDGET_S", "1200"))
        self.num_iterations_per_epoch = ITERATIONS
        self.num_val_iterations_per_epoch = max(1, ITERATIONS // 5)
        self.num_epochs = 1000  # replaced once the first epoch is timed
        self.timed_epoch_seconds = None
        torch.set_num_threads(1)

    def run_training(self):
        self.on_train_start()
        start = time.process_time()
        while self.current_epoch < self.num_epochs:
            self.on_epoch_start()
            self.on_train_epoch_start()
            outputs = [
                self.train_step(next(self.dataloader_train)) for _ in range(self.num_iterations_per_epoch)
            ]
            self.on_train_epoch_end(outputs)
            with torch.no_grad():
                self.on_validation_epoch_start()
                outputs = [
                    self.validation_step(next(self.dataloader_val))
                    for _ in range(self.num_val_iterations_per_epoch)
                ]
                self.on_validation_epoch_end(outputs)
            self.on_epoch_end()
            if self.timed_epoch_seconds is None:
                self.timed_epoch_seconds = time.process_time() - start
                self.num_epochs = max(1, int(self.budget_s // self.timed_epoch_seconds))
                self.lr_scheduler.max_steps = self.num_epochs
                self.print_to_log_file(
                    f"CPU budget {self.budget_s:.0f} s, first epoch {self.timed_epoch_seconds:.1f} s: "
                    f"{self.num_epochs} epochs of {self.num_iterations_per_epoch} iterations"
                )
        self.print_to_log_file(f"CPU seconds in training: {time.process_time() - start:.1f}")
        self.on_train_end()

    def perform_actual_validation(self, save_probabilities=False):
        self.print_to_log_file("final validation skipped (the benchmark predicts its test scans)")
'''.replace("ITERATIONS", str(ITERATIONS))


def install_trainer() -> None:
    import nnunetv2

    # nnU-Net finds a trainer by importing the modules of its trainer package, top-level modules first:
    # there it is found before the primus trainers, whose import needs torchvision (removed: a CUDA build)
    path = Path(nnunetv2.__file__).parent / "training" / "nnUNetTrainer" / "nnUNetTrainer_CPUBudget.py"
    path.write_text(TRAINER)
    print(path)


def train(dataset: str, fold: int, budget_s: float) -> None:
    import os
    import time

    import torch

    os.environ["LESIONSEG_NNUNET_BUDGET_S"] = str(budget_s)
    from nnunetv2.run.run_training import run_training

    cpu0 = time.process_time()
    run_training(dataset, "2d", fold, "nnUNetTrainer_CPUBudget", device=torch.device("cpu"))
    print(f"process CPU seconds: {time.process_time() - cpu0:.1f}")


def predict(dataset: str, fold: int, out_dir: str, cases: list[str]) -> None:
    import torch
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    from nnunetv2.paths import nnUNet_results
    from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name

    torch.set_num_threads(1)
    model = (
        Path(nnUNet_results)
        / maybe_convert_to_dataset_name(dataset)
        / "nnUNetTrainer_CPUBudget__nnUNetPlans__2d"
    )
    predictor = nnUNetPredictor(
        device=torch.device("cpu"), allow_tqdm=False
    )  # nnU-Net's defaults: mirroring on
    predictor.initialize_from_trained_model_folder(str(model), (fold,), "checkpoint_final.pth")
    torch.set_num_threads(1)
    inputs = [case.split(",") for case in cases]
    outputs = [str(Path(out_dir) / Path(files[0]).name.replace("_0000.nii.gz", "")) for files in inputs]
    predictor.predict_from_files_sequential(inputs, outputs, False, True, None)


def main() -> None:
    command, args = sys.argv[1], sys.argv[2:]
    if command == "install-trainer":
        install_trainer()
    elif command == "train":
        train(args[0], int(args[1]), float(args[2]))
    elif command == "predict":
        predict(args[0], int(args[1]), args[2], args[3:])
    else:
        raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    main()
