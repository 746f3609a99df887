"""Hardening (issue 15): weights-only checkpoints, non-finite guard, OSError handling, output formats,
corrupt cache entries, {0, 2} reference masks. docs/faults.md lists which test covers which fault."""

from __future__ import annotations

import errno
import json
import os
import pickle
import re
import signal
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from lesionseg.cli.main import main
from lesionseg.errors import LesionsegError
from lesionseg.io import Volume, atomic_output, read_volume, write_volume
from lesionseg.io.writers import move_volume
from lesionseg.nets import create_network, network_config
from lesionseg.nets.checkpoint import (
    FORMAT_VERSION,
    RESUME_KEYS,
    build_model,
    load_checkpoint,
    save_checkpoint,
)

REPO = Path(__file__).resolve().parents[1]
BUNDLED = REPO / "src" / "lesionseg" / "models" / "wmh_ms_flair_t1" / "seed_0" / "best.pt"  # one network


def tiny_state(**extra: object) -> dict:
    """A small but complete checkpoint state (a width-4 U-Net), with numpy values as the trainer stores."""
    net = create_network("unet", in_channels=2, num_classes=1, width=4, context_slices=1)
    rng = np.random.default_rng(0)
    return {
        "config": {"preprocess": {"target_size": [64, 64]}, "lr": np.float64(1e-3)},
        "network": "unet",
        "network_config": network_config(net),
        "context_slices": 1,
        "label_values": [0, 1],
        "threshold": 0.5,
        "model": net.state_dict(),
        "history": [{"epoch": 1, "val_dice": np.float32(0.25), "train_loss": np.float64(0.5)}],
        "rng": rng.bit_generator.state,
        "mt_rng": np.random.MT19937(0).state,  # holds a numpy uint32 array
        "calibration": {"bins": np.linspace(0, 1, 5), "count": np.int64(3)},
        "min_lesion_voxels": np.int64(4),
        **extra,
    }


# ------------------------------------------------------------------------------------------ checkpoints
def test_checkpoint_round_trip_loads_weights_only_with_numpy_values_converted(tmp_path: Path) -> None:
    state = tiny_state()
    path = save_checkpoint(state, tmp_path / "a.pt")
    raw = torch.load(path, weights_only=True)  # would raise on any numpy object left inside
    assert raw["format_version"] == FORMAT_VERSION
    loaded = load_checkpoint(path)
    assert loaded["min_lesion_voxels"] == 4 and type(loaded["min_lesion_voxels"]) is int
    assert loaded["calibration"]["bins"] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert type(loaded["history"][0]["val_dice"]) is float and loaded["history"][0]["val_dice"] == 0.25
    restored = np.random.default_rng(1)
    restored.bit_generator.state = loaded["rng"]
    assert restored.random() == np.random.default_rng(0).random()
    mt = np.random.MT19937()
    mt.state = loaded["mt_rng"]
    assert mt.random_raw() == np.random.MT19937(0).random_raw()
    for key, value in state["model"].items():
        assert torch.equal(loaded["model"][key], value)
    model = build_model(loaded)
    assert not model.training


def test_bundled_model_loads_and_builds_and_an_unversioned_copy_still_loads(tmp_path: Path) -> None:
    state = load_checkpoint(BUNDLED)
    model = build_model(state, BUNDLED)
    assert sum(p.numel() for p in model.parameters()) > 1000
    old = {k: v for k, v in torch.load(BUNDLED, weights_only=True).items() if k != "format_version"}
    torch.save(old, tmp_path / "old.pt")  # a checkpoint written before the schema was versioned
    assert build_model(load_checkpoint(tmp_path / "old.pt"), tmp_path / "old.pt") is not None


class _Exploit:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204
        return (open, (self.marker, "w"))


def test_malicious_checkpoint_is_refused_and_runs_no_code(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"format": "lesionseg-checkpoint-v1", "model": {}, "payload": _Exploit(str(marker))}, evil)
    assert not marker.exists()  # saving does not call it
    with pytest.raises(LesionsegError, match="only weights are loaded, never code") as info:
        load_checkpoint(evil)
    assert str(evil) in str(info.value) and "\n" not in str(info.value)
    assert not marker.exists()


def test_malicious_legacy_pickle_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps({"payload": _Exploit(str(marker))}))
    with pytest.raises(LesionsegError):
        load_checkpoint(evil)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda s: s.pop("model"), "'model' is missing"),
        (lambda s: s.pop("network"), "'network' is missing"),
        (lambda s: s.pop("label_values"), "'label_values' is missing"),
        (lambda s: s.update(network_config="unet"), "'network_config' must be dict"),
        (lambda s: s.update(context_slices="3"), "'context_slices' must be int"),
        (lambda s: s.update(threshold=1.5), "'threshold' must be in"),
        (lambda s: s.update(format_version=FORMAT_VERSION + 1), "newer than this lesionseg reads"),
        (lambda s: s.update(format_version="one"), "'format_version' is invalid"),
        (lambda s: s.update(format="something-else"), "not a lesionseg checkpoint"),
        (lambda s: s["config"].pop("preprocess"), "'config.preprocess' is missing"),
        (lambda s: s.update(model={"w": [1.0]}), "non-tensor entry"),
    ],
)
def test_checkpoint_with_missing_or_bad_key_gives_one_line_error(
    tmp_path: Path, mutate: Callable[[dict], object], message: str
) -> None:
    state = save_and_reload_raw(tmp_path)
    mutate(state)
    path = tmp_path / "bad.pt"
    torch.save(state, path)
    with pytest.raises(LesionsegError, match=re.escape(message)) as info:
        load_checkpoint(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def save_and_reload_raw(tmp_path: Path) -> dict:
    return torch.load(save_checkpoint(tiny_state(), tmp_path / "good.pt"), weights_only=True)


def test_extra_keys_are_allowed_and_resume_keys_can_be_required(tmp_path: Path) -> None:
    path = save_checkpoint(tiny_state(anything_new={"a": 1}), tmp_path / "x.pt")
    assert load_checkpoint(path)["anything_new"] == {"a": 1}
    with pytest.raises(LesionsegError, match="'optimizer' is missing"):
        load_checkpoint(path, require=RESUME_KEYS)


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 truncated", b"not a checkpoint at all"])
def test_corrupt_checkpoint_file_is_a_clean_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "c.pt"
    path.write_bytes(content)
    with pytest.raises(LesionsegError, match="cannot read checkpoint") as info:  # not "refused": no code
        load_checkpoint(path)
    assert "\n" not in str(info.value)


def test_truncated_real_checkpoint_is_a_clean_error(tmp_path: Path) -> None:
    path = tmp_path / "t.pt"
    path.write_bytes(BUNDLED.read_bytes()[:50_000])
    with pytest.raises(LesionsegError, match="cannot read checkpoint"):
        load_checkpoint(path)


def test_checkpoint_that_does_not_fit_its_network_is_a_clean_error(tmp_path: Path) -> None:
    state = tiny_state()
    state["network_config"] = {**state["network_config"], "width": 8}
    path = save_checkpoint(state, tmp_path / "m.pt")
    with pytest.raises(LesionsegError, match="do not fit its network"):
        build_model(load_checkpoint(path), path)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights_are_never_saved_and_the_last_good_file_is_kept(
    tmp_path: Path, bad: float
) -> None:
    path = save_checkpoint(tiny_state(epoch=1), tmp_path / "best.pt")
    before = path.read_bytes()
    state = tiny_state(epoch=2)
    first = next(k for k, v in state["model"].items() if v.is_floating_point())
    state["model"][first] = state["model"][first].clone().fill_(bad)
    with pytest.raises(LesionsegError, match="model weights are not finite.*last good checkpoint is kept"):
        save_checkpoint(state, path)
    assert path.read_bytes() == before
    assert load_checkpoint(path)["epoch"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt"]  # no temp file left


def test_loading_non_finite_weights_is_refused(tmp_path: Path) -> None:
    state = save_and_reload_raw(tmp_path)
    first = next(k for k, v in state["model"].items() if v.is_floating_point())
    state["model"][first] = state["model"][first].clone()
    state["model"][first].view(-1)[0] = float("nan")
    path = tmp_path / "nan.pt"
    torch.save(state, path)
    with pytest.raises(LesionsegError, match="model weights are not finite"):
        load_checkpoint(path)


def test_predict_refuses_a_model_with_non_finite_weights(tmp_path: Path) -> None:
    from lesionseg.infer.predictor import load_members

    state = torch.load(BUNDLED, weights_only=True)
    for value in state["model"].values():
        if value.is_floating_point():
            value.fill_(float("nan"))
    path = tmp_path / "nan.pt"
    torch.save(state, path)
    with pytest.raises(LesionsegError, match="not finite"):
        load_members([path])


def test_no_torch_load_without_weights_only_true() -> None:
    offenders = []
    for folder in ("src", "benchmarks"):
        for path in (REPO / folder).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            for match in re.finditer(r"torch\.load\(", text):
                call = text[match.start() : text.find(")", match.end()) + 1]
                # a call spanning lines: read up to the matching parenthesis
                depth, end = 0, match.end() - 1
                for end in range(match.end() - 1, len(text)):
                    depth += {"(": 1, ")": -1}.get(text[end], 0)
                    if depth == 0:
                        break
                call = text[match.start() : end + 1]
                if not re.search(r"weights_only\s*=\s*True", call):
                    offenders.append(f"{path.relative_to(REPO)}: {call}")
    assert offenders == []


# ------------------------------------------------------------------------------------------ output formats
def _volume(kind: str = "label") -> Volume:
    array = (np.arange(6 * 7 * 5).reshape(6, 7, 5) % 3 == 0).astype(np.uint8)
    return Volume(array if kind == "label" else array.astype(np.float32) / 2, np.diag([2, 2, 3, 1.0]), kind)


@pytest.mark.parametrize(
    ("name", "gzipped"),
    [("mask.nii", False), ("mask.nii.gz", True), ("MASK.NII", False), ("MASK.NII.GZ", True)],
)
def test_nifti_bytes_match_the_name(tmp_path: Path, name: str, gzipped: bool) -> None:
    path = write_volume(_volume(), tmp_path / name)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") is gzipped
    assert np.array_equal(read_volume(path, "label").array, _volume().array)
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


@pytest.mark.parametrize("name", ["img.mha", "IMG.MHA", "img.nrrd", "img.mhd", "IMG.MHD", "img.nhdr"])
def test_itk_writers_keep_the_name_and_leave_no_temporary_files(tmp_path: Path, name: str) -> None:
    path = write_volume(_volume("image"), tmp_path / name)
    assert path.is_file()
    if name == name.lower():
        assert np.allclose(read_volume(path).array, _volume("image").array)
    else:  # SimpleITK reads only lower-case suffixes: check the header says what the name says
        assert path.read_bytes().startswith(b"ObjectType = Image")
        assert (b"ElementDataFile = LOCAL" in path.read_bytes()) is name.endswith(".MHA")
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert leftovers == []
    if name.lower().endswith((".mha", ".nrrd")):
        assert [p.name for p in tmp_path.iterdir()] == [name]


@pytest.mark.parametrize(
    ("source", "target"), [("a.nii.gz", "b.nii"), ("a.nii", "b.nii.gz"), ("a.nii.gz", "b.mha")]
)
def test_move_volume_rewrites_when_the_type_changes(tmp_path: Path, source: str, target: str) -> None:
    src = write_volume(_volume(), tmp_path / source)
    moved = move_volume(src, tmp_path / target)
    assert not src.exists()
    assert (moved.read_bytes()[:2] == b"\x1f\x8b") is target.endswith(".gz")
    assert np.array_equal(read_volume(moved, "label").array, _volume().array)


def test_segment_writes_an_uncompressed_nii(tmp_path: Path, tiny_volume_factory) -> None:  # noqa: ANN001
    rng = np.random.default_rng(0)
    flair = tiny_volume_factory("flair", (40, 44, 12), array=rng.normal(size=(40, 44, 12)).astype(np.float32))
    t1 = tiny_volume_factory("t1", (40, 44, 12), array=rng.normal(size=(40, 44, 12)).astype(np.float32))
    out = tmp_path / "out" / "mask.nii"
    assert main(["segment", str(flair), str(t1), "-o", str(out), "--probabilities"]) == 0
    assert out.read_bytes()[:2] != b"\x1f\x8b"
    assert read_volume(out, "label").shape == (40, 44, 12)
    names = sorted(p.name for p in out.parent.iterdir())
    assert {"mask.nii", "mask_prob.nii.gz"} <= set(names) and not [n for n in names if n.startswith(".")]


# ------------------------------------------------------------------------------------------ OS faults
def _fails_with(exc: BaseException) -> Callable[[object], int]:
    def run(args: object) -> int:
        raise exc

    return run


def _one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (
            OSError(errno.ENOSPC, "No space left on device", "/data/out/mask.nii.gz"),
            "No space left on device",
        ),
        (PermissionError(errno.EACCES, "Permission denied", "/data/ro/mask.nii.gz"), "Permission denied"),
        (NotADirectoryError(errno.ENOTDIR, "Not a directory", "/data/file/mask.nii.gz"), "Not a directory"),
    ],
)
def test_os_errors_are_one_line_naming_the_path(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, exc: OSError, expected: str
) -> None:
    monkeypatch.setattr("lesionseg.cli.segment.run", _fails_with(exc))
    assert main(["segment", "f.nii.gz", "t.nii.gz", "-o", "m.nii.gz"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert line == f"lesionseg segment: error: {exc.filename}: {expected}"


def test_memory_error_and_interrupt_are_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setattr("lesionseg.cli.segment.run", _fails_with(MemoryError()))
    assert main(["segment", "f.nii.gz", "t.nii.gz", "-o", "m.nii.gz"]) == 2
    assert "out of memory" in _one_error_line(capsys.readouterr().err)
    monkeypatch.setattr("lesionseg.cli.segment.run", _fails_with(KeyboardInterrupt()))
    assert main(["segment", "f.nii.gz", "t.nii.gz", "-o", "m.nii.gz"]) == 130
    assert _one_error_line(capsys.readouterr().err) == "lesionseg segment: interrupted"


def test_out_under_a_regular_file_is_a_clean_error(
    tmp_path: Path,
    tiny_volume_factory,
    capsys: pytest.CaptureFixture,  # noqa: ANN001
) -> None:
    flair = tiny_volume_factory("flair", (40, 44, 12))
    t1 = tiny_volume_factory("t1", (40, 44, 12))
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["segment", str(flair), str(t1), "-o", str(blocker / "mask.nii.gz")]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert str(blocker) in line and (
        "is a file, where a folder is needed" in line or "Not a directory" in line
    )


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_interrupted_write_leaves_no_temporary_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, signum: int
) -> None:
    target = tmp_path / "out" / "mask.nii.gz"

    def run(args: object) -> int:
        with atomic_output(target) as tmp:
            tmp.write_bytes(b"half")
            os.kill(os.getpid(), signum)  # as `kill` or Ctrl-C would, in the middle of the write
            time.sleep(5)
        return 0

    monkeypatch.setattr("lesionseg.cli.segment.run", run)
    before = signal.getsignal(signal.SIGTERM)
    # Ctrl-C as in a terminal: a shell's background job (`cmd &`) starts with SIGINT ignored
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        if signum == signal.SIGTERM:
            with pytest.raises(SystemExit) as info:
                main(["segment", "f.nii.gz", "t.nii.gz", "-o", str(target)])
            assert info.value.code == 143
        else:
            assert main(["segment", "f.nii.gz", "t.nii.gz", "-o", str(target)]) == 130
    finally:
        signal.signal(signal.SIGINT, previous_int)
    assert list(target.parent.iterdir()) == []
    assert signal.getsignal(signal.SIGTERM) == before  # the previous handler is back


# ------------------------------------------------------------------------------------------ cache
def _cache_entry(phantom_dir: Path, tmp_path: Path):  # noqa: ANN202
    from lesionseg.config.preprocess import PreprocessConfig
    from lesionseg.data.cache import PreprocessCache
    from lesionseg.data.manifest import load_manifest

    manifest = load_manifest(phantom_dir / "manifest.json")
    cache, config = PreprocessCache(tmp_path / "cache"), PreprocessConfig(target_size=(64, 64))
    case = manifest.cases[0]
    first = cache.get(manifest, case, phantom_dir, config)
    return manifest, cache, config, case, first, cache.case_dir(config, case.id)


def _rewrite_arrays(folder: Path, **changes: np.ndarray | None) -> None:
    with np.load(folder / "arrays.npz") as data:
        arrays = {name: data[name] for name in data.files}
    for name, value in changes.items():
        if value is None:
            arrays.pop(name)
        else:
            arrays[name] = value
    np.savez_compressed(folder / "arrays.npz", **arrays)


BAD_ENTRIES = {
    "zero bytes": lambda f: (f / "arrays.npz").write_bytes(b""),
    "truncated": lambda f: (f / "arrays.npz").write_bytes((f / "arrays.npz").read_bytes()[:-200]),
    "missing arrays": lambda f: (f / "arrays.npz").unlink(),
    "bad source.json": lambda f: (f / "source.json").write_text("{"),
    "bad record.json": lambda f: (f / "record.json").write_text("[]"),
    "label shape": lambda f: _rewrite_arrays(f, label=np.zeros((3, 3, 3), np.uint8)),
    "no label": lambda f: _rewrite_arrays(f, label=None),
    "image dtype": lambda f: _rewrite_arrays(f, image=np.zeros((2, 64, 64, 2), np.float64)),
    "channels": lambda f: _rewrite_arrays(f, image=np.load(f / "arrays.npz")["image"][:1]),
    "mask shape": lambda f: _rewrite_arrays(f, mask=np.zeros((64, 64, 1), np.uint8)),
    "non-finite": lambda f: _rewrite_arrays(
        f, image=np.full_like(np.load(f / "arrays.npz")["image"], np.nan)
    ),
}


@pytest.mark.parametrize("damage", sorted(BAD_ENTRIES))
def test_bad_cache_entry_is_rebuilt_with_a_one_line_warning(
    phantom_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: str
) -> None:
    manifest, cache, config, case, first, folder = _cache_entry(phantom_dir, tmp_path)
    BAD_ENTRIES[damage](folder)
    assert not cache.is_cached(manifest, case, phantom_dir, config)
    with caplog.at_level("WARNING"):
        again = cache.get(manifest, case, phantom_dir, config)
    assert np.array_equal(again.image, first.image) and np.array_equal(again.label, first.label)
    assert again.image.dtype == np.float32 and not again.image.flags.writeable
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "\n" not in warnings[0], warnings
    assert str(folder) in warnings[0] and "rebuilding" in warnings[0]
    assert cache.is_cached(manifest, case, phantom_dir, config)
    assert [p.name for p in folder.parent.iterdir() if p.name.startswith(".")] == []


def test_old_npy_layout_is_rebuilt_silently(
    phantom_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    manifest, cache, config, case, first, folder = _cache_entry(phantom_dir, tmp_path)
    source = json.loads((folder / "source.json").read_text())
    del source["format"]
    (folder / "source.json").write_text(json.dumps(source))
    (folder / "image.npy").write_bytes(b"")  # the zero-byte .npy of the audit
    with caplog.at_level("WARNING"):
        again = cache.get(manifest, case, phantom_dir, config)
    assert np.array_equal(again.image, first.image) and caplog.records == []
    assert not (folder / "image.npy").exists()


def test_cache_stores_lossless_compressed_entries(phantom_dir: Path, tmp_path: Path) -> None:
    _, _, _, _, first, folder = _cache_entry(phantom_dir, tmp_path)
    plain = first.image.nbytes + first.mask.nbytes + first.label.nbytes
    assert (folder / "arrays.npz").stat().st_size < plain / 3
    with np.load(folder / "arrays.npz") as data:
        assert data["image"].dtype == np.float32 and np.array_equal(data["image"], first.image)


# ------------------------------------------------------------------------------------------ {0, 2} references
@pytest.mark.parametrize(("value", "pred_value"), [(2, 1), (255, 1), (2, 2)])
def test_reference_with_another_lesion_value_is_scored_as_lesion(
    tmp_path: Path, capsys: pytest.CaptureFixture, value: int, pred_value: int
) -> None:
    from lesionseg.report import read_metrics_csv

    mask = np.zeros((12, 12, 6), np.uint8)
    mask[3:8, 4:9, 1:4] = 1
    affine = np.diag([1.0, 1.0, 2.0, 1.0])
    pred = write_volume(Volume(mask * pred_value, affine, "label"), tmp_path / "pred.nii.gz")
    ref = write_volume(Volume(mask * value, affine, "label"), tmp_path / "ref.nii.gz")
    out = tmp_path / "eval"
    assert (
        main(["evaluate", "--pred", str(pred), "--ref", str(ref), "--out", str(out), "--overlay-slices", "0"])
        == 0
    )
    assert "DSC 1.0000" in capsys.readouterr().out
    rows = read_metrics_csv(out / "metrics.csv")
    assert [(r["label"], r["dsc"]) for r in rows] == [("lesion", 1.0)]


def test_a_prediction_with_two_values_against_a_binary_reference_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    mask = np.zeros((12, 12, 6), np.uint8)
    mask[3:8, 4:9, 1:4] = 1
    pred_array = mask.copy()
    pred_array[3:5, 4:9, 1:4] = 3  # values {1, 3}: a label map of another task, not a binary mask
    affine = np.diag([1.0, 1.0, 2.0, 1.0])
    pred = write_volume(Volume(pred_array, affine, "label"), tmp_path / "pred.nii.gz")
    ref = write_volume(Volume(mask, affine, "label"), tmp_path / "ref.nii.gz")
    assert main(["evaluate", "--pred", str(pred), "--ref", str(ref), "--out", str(tmp_path / "eval")]) == 2
    assert "prediction has values [3], but the task is binary (0/1)" in capsys.readouterr().err


def test_multi_label_reference_is_not_binarised(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    ref_array = np.zeros((12, 12, 6), np.uint8)
    ref_array[2:5, 2:5, 1:3], ref_array[7:10, 7:10, 2:5] = 1, 2
    affine = np.diag([1.0, 1.0, 2.0, 1.0])
    pred = write_volume(Volume((ref_array > 0).astype(np.uint8), affine, "label"), tmp_path / "p.nii.gz")
    ref = write_volume(Volume(ref_array, affine, "label"), tmp_path / "r.nii.gz")
    out = tmp_path / "eval"
    assert (
        main(["evaluate", "--pred", str(pred), "--ref", str(ref), "--out", str(out), "--overlay-slices", "0"])
        == 0
    )
    from lesionseg.report import read_metrics_csv

    labels = {r["label"]: r["dsc"] for r in read_metrics_csv(out / "metrics.csv")}
    assert labels["label_2"] == 0.0 and 0.0 < labels["label_1"] < 1.0


@pytest.mark.parametrize("method", ["tscnn-sbfl", "wmh-dice"])
def test_train_reuses_the_cache_that_preprocess_built(
    phantom_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, method: str
) -> None:
    """Issue 16 item 5: same configuration -> same cache key, so `train --cache DIR` computes nothing."""
    import lesionseg.data.cache as cache_module
    from lesionseg.config.train import resolve_train_config
    from lesionseg.data.cache import PreprocessCache
    from lesionseg.data.manifest import load_manifest
    from lesionseg.train.run import preprocessed_cases

    out = tmp_path / "cache"
    argv = ["preprocess", "--manifest", str(phantom_dir), "--root", str(phantom_dir), "--out", str(out)]
    assert main([*argv, "--set", "target_size=64,64"]) == 0
    cfg = resolve_train_config(method, "cpu", overrides=["preprocess.target_size=[64,64]"])

    def recompute(*args: object) -> None:
        raise AssertionError("train recomputed a case that preprocess had cached")

    monkeypatch.setattr(cache_module, "preprocess_case", recompute)
    manifest = load_manifest(phantom_dir / "manifest.json")
    cases = preprocessed_cases(manifest, phantom_dir, manifest.subjects, cfg, PreprocessCache(out))
    assert len(cases) == len(manifest.cases) and all(c.image.dtype == np.float32 for c in cases)


def _nifti_with_srow_x(path: Path, row: list[float]) -> Path:
    """A gzipped NIfTI-1 whose sform's first row is ``row`` (written into the raw header: nibabel refuses
    to build such an image)."""
    import gzip
    import struct

    import nibabel as nib

    raw = bytearray(nib.Nifti1Image(np.zeros((4, 4, 4), np.float32), np.eye(4)).to_bytes())
    raw[252:256] = struct.pack("<hh", 0, 1)  # qform_code 0, sform_code 1
    raw[280:296] = struct.pack("<4f", *row)  # srow_x
    path.write_bytes(gzip.compress(bytes(raw)))
    return path


@pytest.mark.parametrize(
    ("row", "message"),
    [([np.inf, 0, 0, 0], "NaN or infinite values"), ([0, 0, 0, 0], "singular")],
)
def test_a_header_affine_that_is_not_finite_or_singular_is_a_one_line_error(
    tmp_path: Path, row: list[float], message: str
) -> None:
    path = _nifti_with_srow_x(tmp_path / "bad.nii.gz", row)
    with pytest.raises(LesionsegError, match=message) as err:
        read_volume(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("name", ["scan.Nii.Gz", "SCAN.NII.GZ", "scan.NII"])
def test_mixed_case_nifti_suffixes_are_read(tmp_path: Path, name: str) -> None:
    import nibabel as nib

    array = np.arange(64, dtype=np.float32).reshape(4, 4, 4)
    plain = tmp_path / ("s.nii.gz" if name.lower().endswith(".gz") else "s.nii")
    nib.save(nib.Nifti1Image(array, np.diag([2.0, 2.0, 3.0, 1.0])), str(plain))
    plain.rename(tmp_path / name)
    volume = read_volume(tmp_path / name)
    np.testing.assert_array_equal(volume.array, array)
    np.testing.assert_allclose(volume.spacing, (2.0, 2.0, 3.0))


def test_export_of_a_model_folder_names_a_network_to_export(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    folder = BUNDLED.parent.parent
    assert main(["export", "--model", str(folder), "--out", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err
    assert "is a model folder; export writes one network" in err and "seed_0/best.pt" in err
    assert not (tmp_path / "m.onnx").exists()
