"""Hardening (issue 15): weights-only checkpoints, non-finite guard, OSError handling, output formats,
corrupt cache entries, {0, 2} reference masks. docs/faults.md lists which test covers which fault."""

from __future__ import annotations

import pickle
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from lesionseg.errors import LesionsegError
from lesionseg.nets import create_network, network_config
from lesionseg.nets.checkpoint import (
    FORMAT_VERSION,
    RESUME_KEYS,
    build_model,
    load_checkpoint,
    save_checkpoint,
)

REPO = Path(__file__).resolve().parents[1]
BUNDLED = REPO / "src" / "lesionseg" / "models" / "wmh_ms_flair_t1.pt"


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


def test_bundled_model_still_loads_and_builds() -> None:
    state = load_checkpoint(BUNDLED)
    assert "format_version" not in torch.load(BUNDLED, weights_only=True)  # an old, unversioned file
    model = build_model(state, BUNDLED)
    assert sum(p.numel() for p in model.parameters()) > 1000


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
    with pytest.raises(LesionsegError, match="cannot read checkpoint|refused to load") as info:
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
            text = path.read_text()
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
