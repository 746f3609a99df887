"""benchmarks/prose/paper_changes.md states the CPU profile's values as config/train.py has them."""

from __future__ import annotations

from pathlib import Path

from lesionseg.config.train import (
    CPU_LR,
    CPU_NETWORK_OPTIONS,
    CPU_PROFILE,
    CPU_WIDTH,
    METHOD_PRESETS,
    resolve_train_config,
)

DOC = Path(__file__).resolve().parents[1] / "benchmarks" / "prose" / "paper_changes.md"


def test_paper_changes_match_the_cpu_profile() -> None:
    text = DOC.read_text()
    row = {line.split("|")[1].strip(): line for line in text.splitlines() if line.startswith("| ")}
    assert (
        f"| {CPU_PROFILE['epochs']} x {CPU_PROFILE['steps_per_epoch']} |" in row["epochs x steps per epoch"]
    )
    assert f"| {CPU_PROFILE['batch_size']} |" in row["batch size"]
    height, width = CPU_PROFILE["patch_size"]  # type: ignore[misc]
    assert f"| {height} x {width} patches |" in row["input size"]
    assert f"`lesion_slice_ratio` {CPU_PROFILE['lesion_slice_ratio']}" in row["training slices"]
    assert f"at most {CPU_PROFILE['val_max_slices']} per evaluation" in row["validation slices"]
    assert CPU_PROFILE["bf16"] and CPU_PROFILE["channels_last"] and "bf16 autocast, channels_last" in text
    assert set(CPU_LR) == {"wmh-dice", "wmh-focal-tversky", "wmh-binary-focal"}
    assert all(lr == 1e-3 for lr in CPU_LR.values()) and "1e-3 for all three members" in text
    widths = {m: resolve_train_config(m, "cpu").width for m in ("tscnn-focal", "tscnn-sbfl", "wmh-dice")}
    widths["pixelnet"] = resolve_train_config("pixelnet-balanced", "cpu").width
    assert widths == {"tscnn-focal": 16, "tscnn-sbfl": 32, "wmh-dice": 16, "pixelnet": 16}
    assert set(CPU_WIDTH.values()) == {16}
    assert "TS-CNN B-E 16, F-G 32" in row["width (channels of the first level)"]
    assert "WMH 16; PixelNet 16" in row["width (channels of the first level)"]
    assert resolve_train_config("wmh-dice", "cpu").network_options.get("batch_norm") is True
    tscnn = [m for m, p in METHOD_PRESETS.items() if p.get("network") in ("tscnn", "resunet")]
    assert all(resolve_train_config(m, "cpu").lesion_patch_probability == 1.0 for m in tscnn)
    assert "`lesion_patch_probability` 1.0" in row["patch placement"]
    assert "cannot be fetched" in row["PixelNet initialisation"]
    fc, fc_row = CPU_NETWORK_OPTIONS["pixelnet"], row["PixelNet fc6 / fc7 / MLP"]
    assert f"fc6 {fc['fc6_kernel']} x {fc['fc6_kernel']}, fc6 and fc7 {fc['fc_width']}" in fc_row
    assert f"MLP {fc['mlp_width']}-{fc['mlp_width']}-K" in fc_row
    assert all(resolve_train_config(m, "cpu").threshold == 0.7 for m in tscnn)
    assert "(`threshold` 0.7)" in row["TS-CNN threshold"]
