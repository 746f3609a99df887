"""One training road: ``lesionseg train`` and ``lesionseg.train(...)`` resolve the same members, train them
into the same folders and calibrate their average alike (``lesionseg.train.averaged``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import lesionseg
import lesionseg.train.averaged
from lesionseg.cli.main import main

TINY = ["steps=2", "budget_s=null", "evaluations=1", "width=4"]


def member_configs_on_disk(out: Path) -> dict[str, dict]:
    """Each member folder's saved config.json, by folder name."""
    return {p.parent.name: json.loads(p.read_text()) for p in sorted(out.glob("*/config.json"))}


@pytest.mark.slow
def test_the_command_and_the_function_train_the_same_model(phantom_dir: Path, tmp_path: Path) -> None:
    manifest, cache = phantom_dir / "manifest.json", tmp_path / "cache"
    by_cli, by_api = tmp_path / "cli", tmp_path / "api"
    argv = ["train", "--manifest", str(manifest), "--root", str(phantom_dir), "--out", str(by_cli)]
    argv += ["--cache", str(cache), "--quiet", "--seeds", "0", "1", "--set", *TINY]
    assert main(argv) == 0
    model = lesionseg.train(
        manifest, phantom_dir, by_api, seeds=[0, 1], overrides=TINY, cache=cache, progress=False
    )
    configs = member_configs_on_disk(by_cli)
    assert sorted(configs) == model.folders == ["seed_0", "seed_1"]
    assert configs == member_configs_on_disk(by_api)
    assert [c["seed"] for c in configs.values()] == [0, 1]
    calibrations = [json.loads((out / "ensemble_calibration.json").read_text()) for out in (by_cli, by_api)]
    assert calibrations[0]["members"] == calibrations[1]["members"] == ["seed_0/best.pt", "seed_1/best.pt"]
    assert model.calibration is not None and model.calibration.threshold == calibrations[1]["threshold"]


def test_without_seeds_both_train_the_recipes_three_networks(
    phantom_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both hand the road the same three configs (seeds 0 1 2); the road itself is stubbed out."""
    handed: list[list] = []

    def road(configs: list, *args: object, **kwargs: object) -> lesionseg.train.averaged.AveragedModel:
        handed.append(configs)
        return lesionseg.train.averaged.AveragedModel(configs, [], [], None, None, tmp_path)

    monkeypatch.setattr(lesionseg.train.averaged, "train_from_manifest", road)
    manifest = phantom_dir / "manifest.json"
    argv = ["train", "--manifest", str(manifest), "--root", str(phantom_dir), "--out", str(tmp_path / "c")]
    assert main(argv) == 0
    lesionseg.train(manifest, phantom_dir, tmp_path / "a")
    by_cli, by_api = handed
    assert [c.seed for c in by_cli] == [c.seed for c in by_api] == [0, 1, 2]
    assert by_cli == by_api and {c.method for c in by_api} == {"lesion-unet"}
