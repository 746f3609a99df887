"""PreprocessCache (hit, miss on config or file change, atomic folders, memory maps) and the CLI command."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

import lesionseg.data.cache as cache_module
from lesionseg.cli.main import main
from lesionseg.config import load_config
from lesionseg.config.preprocess import PreprocessConfig
from lesionseg.data.cache import PreprocessCache
from lesionseg.data.manifest import manifest_from_dict, save_manifest
from lesionseg.errors import LesionsegError
from lesionseg.io import Volume, read_volume, write_volume
from lesionseg.preprocess import invert

SMALL = PreprocessConfig(target_size=(40, 40), crop_margin=(2, 2, 1))


def write_case(root: Path, name: str, seed: int, with_mask: bool) -> dict:
    """Two channels, a label and maybe a brain mask, on an oblique 30x26x10 grid; returns the case entry."""
    rng = np.random.default_rng(seed)
    shape = (30, 26, 10)
    affine = np.array([[0, 0, -3.0, 20], [-1.1, 0.1, 0, 5], [0.1, 1.1, 0, -8], [0, 0, 0, 1]])
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij"))
    brain = (grid**2).sum(axis=0) < 0.7
    entry: dict = {"id": name, "images": {}}
    for channel in ("FLAIR", "T1"):
        array = np.where(brain, rng.uniform(10, 20, shape), 0).astype(np.float32)
        path = f"{name}/{channel}.nii.gz"
        write_volume(Volume(array, affine), root / path)
        entry["images"][channel] = path
    label = (brain & (rng.random(shape) < 0.2)).astype(np.uint8)
    write_volume(Volume(label, affine, "label"), root / f"{name}/label.nii.gz")
    entry["label"] = f"{name}/label.nii.gz"
    if with_mask:
        write_volume(Volume(brain.astype(np.uint8), affine, "label"), root / f"{name}/mask.nii")
        entry["mask"] = f"{name}/mask.nii"
    return entry


@pytest.fixture()
def dataset(tmp_path: Path):
    root = tmp_path / "data"
    cases = [write_case(root, "case1", 1, True), write_case(root, "case/2", 2, False)]
    raw = {"name": "tiny", "channel_names": ["FLAIR", "T1"], "labels": {"background": 0, "lesion": 1}}
    manifest = manifest_from_dict({**raw, "cases": cases})
    manifest_path = save_manifest(manifest, tmp_path / "tiny.json")
    return manifest, root, manifest_path


@pytest.fixture()
def counted(monkeypatch):
    """Counts the cases the cache actually preprocesses."""
    calls: list[str] = []
    real = cache_module.preprocess_case

    def counting(loaded, config):
        calls.append(loaded.case.id)
        return real(loaded, config)

    monkeypatch.setattr(cache_module, "preprocess_case", counting)
    return calls


def test_second_get_reads_the_entry_without_recomputing(dataset, counted, tmp_path) -> None:
    manifest, root, _ = dataset
    cache = PreprocessCache(tmp_path / "cache")
    first = cache.get(manifest, "case1", root, SMALL)
    assert counted == ["case1"]
    assert cache.is_cached(manifest, "case1", root, SMALL)
    second = cache.get(manifest, manifest.case("case1"), root, SMALL)
    assert counted == ["case1"]
    for array in (second.image, second.label, second.mask):
        assert isinstance(array, np.ndarray) and not array.flags.writeable
    assert np.array_equal(first.image, second.image) and second.record == first.record
    assert second.image.shape[:3] == (2, 40, 40) and second.image.dtype == np.float32
    folder = cache.case_dir(SMALL, "case1")
    assert folder.parent.name == cache_module.config_key(SMALL)
    assert sorted(p.name for p in folder.iterdir()) == ["arrays.npz", "record.json", "source.json"]
    with np.load(folder / "arrays.npz") as data:
        assert sorted(data.files) == ["image", "label", "mask"] and data["image"].dtype == np.float32
    assert load_config(PreprocessConfig, folder.parent / "config.json") == SMALL
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]  # no temporaries left
    back = invert(second.label, second.record)
    original = manifest.case("case1")
    assert np.array_equal(back, read_volume(root / original.label.path, "label").array)


def test_config_change_recomputes_into_another_folder(dataset, counted, tmp_path) -> None:
    manifest, root, _ = dataset
    cache = PreprocessCache(tmp_path / "cache")
    cache.get(manifest, "case1", root, SMALL)
    other = PreprocessConfig(target_size=(48, 48), crop_margin=(2, 2, 1))
    result = cache.get(manifest, "case1", root, other)
    assert counted == ["case1", "case1"]
    assert result.image.shape[1:3] == (48, 48)
    assert cache.config_dir(other) != cache.config_dir(SMALL)
    cache.get(manifest, "case1", root, SMALL)  # the first one is still there
    assert counted == ["case1", "case1"]


def test_changed_input_file_recomputes_and_replaces(dataset, counted, tmp_path) -> None:
    manifest, root, _ = dataset
    cache = PreprocessCache(tmp_path / "cache")
    cache.get(manifest, "case1", root, SMALL)
    flair = root / "case1/FLAIR.nii.gz"
    stat = flair.stat()
    os.utime(flair, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    assert not cache.is_cached(manifest, "case1", root, SMALL)
    cache.get(manifest, "case1", root, SMALL)
    assert counted == ["case1", "case1"]
    folder = cache.case_dir(SMALL, "case1")
    assert [p.name for p in folder.parent.iterdir() if p.name.startswith(".")] == []
    source = json.loads((folder / "source.json").read_text())
    assert {f["role"] for f in source["files"]} == {"image:FLAIR", "image:T1", "label", "mask"}


def test_damaged_entry_is_recomputed(dataset, counted, tmp_path) -> None:
    manifest, root, _ = dataset
    cache = PreprocessCache(tmp_path / "cache")
    cache.get(manifest, "case1", root, SMALL)
    (cache.case_dir(SMALL, "case1") / "arrays.npz").write_bytes(b"truncated")
    result = cache.get(manifest, "case1", root, SMALL)
    assert counted == ["case1", "case1"] and result.image.shape[0] == 2


def test_case_ids_become_safe_folder_names(dataset, tmp_path) -> None:
    manifest, root, _ = dataset
    cache = PreprocessCache(tmp_path / "cache")
    result = cache.get(manifest, "case/2", root, SMALL)
    folder = cache.case_dir(SMALL, "case/2")
    assert folder.parent == cache.config_dir(SMALL) and folder.name.startswith("case_2-")
    assert result.record.brain_mask == "nonzero"


def test_cli_preprocess_fills_the_cache(dataset, tmp_path, capsys) -> None:
    _, root, manifest_path = dataset
    out = tmp_path / "cache"
    argv = ["preprocess", str(manifest_path), "--root", str(root), "--out", str(out)]
    assert main([*argv, "--set", "target_size=40,40", "crop_margin=[2,2,1]"]) == 0
    printed = capsys.readouterr()
    config_dir = PreprocessCache(out).config_dir(SMALL)
    assert load_config(PreprocessConfig, config_dir / "config.json") == SMALL
    assert (config_dir / "case1" / "arrays.npz").exists()
    assert "case1: (2, 40, 40," in printed.out + printed.err
    assert main([*argv, "--set", "target_size=40,40", "crop_margin=[2,2,1]", "--cases", "case1"]) == 0
    assert "cached" in "".join(capsys.readouterr())


def test_cli_config_file_and_errors(dataset, tmp_path, capsys) -> None:
    _, root, manifest_path = dataset
    out = tmp_path / "cache"
    config_path = tmp_path / "cfg.json"
    config_path.write_text(json.dumps({"target_size": [40, 40], "normalize": "none"}))
    argv = ["preprocess", str(manifest_path), "--root", str(root), "--out", str(out)]
    assert main([*argv, "--config", str(config_path), "--cases", "case1"]) == 0
    expected = PreprocessConfig(target_size=(40, 40), normalize="none")
    assert (PreprocessCache(out).config_dir(expected) / "case1" / "record.json").exists()
    capsys.readouterr()
    assert main([*argv, "--set", "normalise=none"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("lesionseg preprocess: error: --set: unknown key 'normalise'") and "\n" not in err
    config_path.write_text(json.dumps({"n4_shrinks": 2}))
    assert main([*argv, "--config", str(config_path)]) == 2
    assert f"{config_path}: unknown key(s) 'n4_shrinks'" in capsys.readouterr().err
    assert main([*argv, "--cases", "nope"]) == 2
    assert "no case 'nope'" in capsys.readouterr().err


def test_an_entry_swapped_by_another_process_is_waited_for(dataset, tmp_path, monkeypatch) -> None:
    """Two processes that build the same entry at once: while one swaps in its copy, the other's read-back
    finds nothing for a moment; it waits and reads again instead of failing (and fails only if it never
    reads back)."""
    manifest, root, _ = dataset
    cache = PreprocessCache(tmp_path / "cache")
    real_load = PreprocessCache._load
    misses = {"left": 1}

    def swapped_once(self, folder, fingerprint, channels):
        if (folder / "arrays.npz").exists() and misses["left"] > 0:
            misses["left"] -= 1
            return None  # as if the entry were moved aside at that moment
        return real_load(self, folder, fingerprint, channels)

    monkeypatch.setattr(cache_module, "RELOAD_WAITS_S", (0.0, 0.0, 0.0))
    monkeypatch.setattr(PreprocessCache, "_load", swapped_once)
    assert cache.get(manifest, "case1", root, SMALL).image.shape[0] == 2
    misses["left"] = 10**6
    with pytest.raises(LesionsegError, match="changed while it was written"):
        PreprocessCache(tmp_path / "other").get(manifest, "case1", root, SMALL)
