"""config: dataclass <-> dict/JSON with type checks, key=value overrides, PreprocessConfig and presets."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Literal

import pytest

from lesionseg.config import (
    apply_overrides,
    config_hash,
    dump_config,
    from_dict,
    load_config,
    parse_override_value,
    to_dict,
)
from lesionseg.config.preprocess import PREPROCESS_PRESETS, PreprocessConfig, preprocess_preset
from lesionseg.config.train import resolve_train_config
from lesionseg.errors import LesionsegError


@dataclass(frozen=True)
class Inner:
    rate: float = 0.1
    steps: tuple[int, ...] = (1, 2)


@dataclass(frozen=True)
class Outer:
    name: str = "x"
    mode: Literal["a", "b"] = "a"
    size: tuple[int, int] | None = (8, 8)
    flag: bool = False
    inner: Inner = field(default_factory=Inner)
    tags: list[str] = field(default_factory=list)
    weights: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Required:
    count: int


def test_round_trip_through_json() -> None:
    inner = Inner(0.5, (3,))
    cfg = Outer(name="y", mode="b", size=None, flag=True, inner=inner, tags=["t"], weights={"a": 2.0})
    data = json.loads(json.dumps(to_dict(cfg)))
    assert data["inner"] == {"rate": 0.5, "steps": [3]}
    assert from_dict(Outer, data) == cfg


def test_lists_become_tuples_and_ints_become_floats() -> None:
    cfg = from_dict(Outer, {"size": [4, 5], "inner": {"rate": 1, "steps": [7, 8, 9]}})
    assert cfg.size == (4, 5) and cfg.inner.steps == (7, 8, 9)
    assert isinstance(cfg.inner.rate, float)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"nmae": "x"}, "unknown key(s) 'nmae' (valid keys: flag, inner, mode, name, size, tags, weights)"),
        ({"inner": {"rte": 1.0}}, "inner: unknown key(s) 'rte'"),
        ({"mode": "c"}, "mode: 'c' is not one of 'a', 'b'"),
        ({"size": [1, 2, 3]}, "size: expected 2 values, got 3"),
        ({"size": [1, "2"]}, "size[1]: expected int"),
        ({"flag": 1}, "flag: expected bool, got 1"),
        ({"inner": {"steps": [True]}}, "inner.steps[0]: expected int"),
        ({"name": 3}, "name: expected str"),
        ({"tags": "t"}, "tags: expected a list"),
        ({"weights": {"a": "heavy"}}, "weights.a: expected float"),
    ],
)
def test_bad_values_raise_one_clear_error(data: dict, message: str) -> None:
    with pytest.raises(LesionsegError) as info:
        from_dict(Outer, data, path="cfg.json")
    assert message in str(info.value)
    assert str(info.value).startswith("cfg.json: ")


def test_missing_required_key() -> None:
    with pytest.raises(LesionsegError, match="missing required key 'count'"):
        from_dict(Required, {})
    assert from_dict(Required, {"count": 3}) == Required(3)


@pytest.mark.parametrize(
    ("text", "value"),
    [("true", True), ("3", 3), ("0.5", 0.5), ("[1, 2]", [1, 2]), ("1,2,3", [1, 2, 3]), ("null", None)]
    + [("None", None), ("otsu", "otsu"), ('"1"', "1"), ("a,b", ["a", "b"])],
)
def test_parse_override_value(text: str, value: object) -> None:
    assert parse_override_value(text) == value


def test_apply_overrides_nested_and_typed() -> None:
    cfg = apply_overrides(Outer(), ["name=z", "size=16,16", "inner.rate=2", "inner.steps=[5]", "flag=true"])
    assert cfg == Outer(name="z", size=(16, 16), flag=True, inner=Inner(2.0, (5,)))
    assert apply_overrides(Outer(), ["size=none"]).size is None
    assert apply_overrides(Outer(), []) == Outer()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("colour=red", "unknown key 'colour' (valid keys of Outer: flag, inner, mode, name, size, tags"),
        ("inner.speed=1", "unknown key 'inner.speed' (valid keys of inner: rate, steps)"),
        ("name.first=1", "unknown key 'name.first'"),
        ("size", "expected key=value, got 'size'"),
        ("mode=c", "mode: 'c' is not one of 'a', 'b'"),
        ("flag=maybe", "flag: expected bool, got 'maybe'"),
    ],
)
def test_apply_overrides_errors(override: str, message: str) -> None:
    with pytest.raises(LesionsegError) as info:
        apply_overrides(Outer(), [override])
    assert message in str(info.value)


def test_load_and_dump_files(tmp_path) -> None:
    cfg = Outer(name="file", inner=Inner(0.25, (1,)))
    path = dump_config(cfg, tmp_path / "sub" / "cfg.json")
    assert load_config(Outer, path) == cfg
    assert [p.name for p in path.parent.iterdir()] == ["cfg.json"]  # no temporary left behind
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(LesionsegError, match="bad.json: cannot read config"):
        load_config(Outer, tmp_path / "bad.json")
    with pytest.raises(LesionsegError, match="config file not found"):
        load_config(Outer, tmp_path / "missing.json")
    (tmp_path / "unknown.json").write_text('{"nam": "x"}')
    with pytest.raises(LesionsegError, match="unknown.json: unknown key"):
        load_config(Outer, tmp_path / "unknown.json")


def test_config_hash_is_stable_and_sensitive() -> None:
    assert config_hash(Outer()) == config_hash(from_dict(Outer, to_dict(Outer())))
    assert config_hash(Outer()) != config_hash(Outer(flag=True))
    assert len(config_hash(Outer())) == 12


def test_preprocess_config_defaults_round_trip() -> None:
    cfg = PreprocessConfig()
    assert cfg.reorient and not cfg.n4 and cfg.brain_mask == "file" and cfg.normalize == "zscore"
    assert cfg.target_size == (256, 256) and cfg.target_spacing is None
    assert from_dict(PreprocessConfig, json.loads(json.dumps(to_dict(cfg)))) == cfg
    cfg2 = apply_overrides(cfg, ["n4=true", "target_spacing=1,1,3", "brain_mask=otsu", "target_size=null"])
    assert cfg2.n4 and cfg2.target_spacing == (1.0, 1.0, 3.0) and cfg2.target_size is None


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("n4_shrink=0", "n4_shrink must be >= 1"),
        ("crop_margin=-1,0,0", "crop_margin must be >= 0"),
        ("target_spacing=1,0,1", "target_spacing must be positive"),
        ("n4_iterations=[]", "n4_iterations must be positive"),
        ("brain_mask=skull", "brain_mask: 'skull' is not one of 'file', 'nonzero', 'otsu', 'none'"),
    ],
)
def test_preprocess_config_rejects_bad_values(override: str, message: str) -> None:
    with pytest.raises(LesionsegError, match=message):
        apply_overrides(PreprocessConfig(), [override])


def test_presets_are_values() -> None:
    assert preprocess_preset("default") == PreprocessConfig()
    assert preprocess_preset("raw").n4
    assert set(PREPROCESS_PRESETS) == {"default", "raw"}
    with pytest.raises(LesionsegError, match="unknown preprocess preset 'fast' \\(valid: default, raw\\)"):
        preprocess_preset("fast")


def test_pixelnet_paper_profile_has_the_papers_fully_connected_widths() -> None:
    paper = resolve_train_config("pixelnet-balanced", "paper").network_options
    cpu = resolve_train_config("pixelnet-uniform", "cpu").network_options
    assert paper == {"fc_width": 4096, "fc6_kernel": 7, "mlp_width": 4096}
    assert cpu == {"fc_width": 1024, "fc6_kernel": 3, "mlp_width": 512}


def test_tscnn_rows_threshold_at_the_authors_0_7() -> None:
    for method in ("resunet-focal", "tscnn-focal", "tscnn-focal-aug", "tscnn64-focal-aug", "tscnn-sbfl"):
        assert resolve_train_config(method, "paper").threshold == 0.7
        assert resolve_train_config(method, "cpu").threshold == 0.7
