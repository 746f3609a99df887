"""Manifest cases preprocessed (``preprocess_case``) and their on-disk cache:
``<cache_dir>/<config-hash>/<case-id>/``.

It lives in data/, above preprocess/: preprocessing works on Volumes and knows nothing of manifests.

Each case folder holds ``arrays.npz`` (``np.savez_compressed``, lossless: ``image`` (C, X, Y, Z) float32,
``mask`` and, when the case has one, ``label`` (X, Y, Z) uint8; about 10x smaller than plain .npy files, as
the brain fills a small part of the padded grid), ``record.json`` (the PreprocessRecord) and ``source.json``
(the case's input files with their sizes and modification times). The folder name is a hash of the config;
``source.json`` carries a hash of the inputs, so a case is recomputed when its config or any of its files
changes. Folders are written in a temporary folder beside the final one and renamed into place, so a reader
never sees half a case; ``config.json`` beside the case folders is the resolved config.

Every entry is validated when read (readable, complete, shapes, dtypes, channels, label against image, finite
values, fingerprint); a bad one is rebuilt with a one-line warning on stderr. Entries of the older layout
(separate .npy files) are rebuilt silently.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from lesionseg.config import config_hash, dump_config, to_dict
from lesionseg.config.preprocess import PreprocessConfig
from lesionseg.data.manifest import Case, ImageSpec, LoadedCase, Manifest, load_case
from lesionseg.errors import LesionsegError
from lesionseg.io import atomic_output
from lesionseg.preprocess.pipeline import PreprocessedCase, preprocess_volumes
from lesionseg.preprocess.record import RECORD_VERSION, PreprocessRecord

CACHE_FORMAT = 2  # 1: image/mask/label .npy files; 2: one compressed arrays.npz
ARRAYS = "arrays.npz"
RELOAD_WAITS_S = (0.0, 0.2, 1.0, 3.0)  # after storing an entry: read it back, waiting this long between tries
log = logging.getLogger(__name__)


def preprocess_case(loaded: LoadedCase, config: PreprocessConfig) -> PreprocessedCase:
    """Preprocess a case read by ``load_case`` (its channels, label and brain-mask file, if any). A case
    without a brain-mask file whose scan has skull is skull-stripped first (``config.skull_strip``)."""
    images, mask = loaded.images, loaded.mask
    if mask is None and config.brain_mask == "file":
        from lesionseg.preprocess.skullstrip import should_strip, strip_skull

        if should_strip(config.skull_strip, loaded.reference)[0]:
            names = list(loaded.case.images)
            images, mask, _ = strip_skull(images, names)
    return preprocess_volumes(images, config, mask=mask, label=loaded.label)


class PreprocessCache:
    """Preprocessed cases on disk, computed on first use and read (and validated) afterwards."""

    def __init__(self, cache_dir: str | Path) -> None:
        self.cache_dir = Path(cache_dir)

    def config_dir(self, config: PreprocessConfig) -> Path:
        """The folder of all cases preprocessed with ``config``."""
        return self.cache_dir / config_key(config)

    def case_dir(self, config: PreprocessConfig, case_id: str) -> Path:
        return self.config_dir(config) / safe_name(case_id)

    def is_cached(
        self, manifest: Manifest, case: Case | str, root: str | Path, config: PreprocessConfig
    ) -> bool:
        """True when ``get`` would read the case from disk rather than compute it."""
        case = manifest.case(case) if isinstance(case, str) else case
        loaded = self._load(
            self.case_dir(config, case.id),
            source_fingerprint(manifest, case, root),
            len(manifest.channel_names),
            warn=False,
        )
        return loaded is not None and not _labels_outside(loaded, manifest.label_values)

    def get(
        self,
        manifest: Manifest,
        case: Case | str,
        root: str | Path,
        config: PreprocessConfig,
        progress: bool = False,
    ) -> PreprocessedCase:
        """The preprocessed case, with its arrays read-only (float32 image, uint8 mask and label).

        Computes and stores it first when it is missing or stale (config or input files changed).
        ``progress``: print one line to stderr when a case is computed.
        """
        case = manifest.case(case) if isinstance(case, str) else case
        fingerprint = source_fingerprint(manifest, case, root)
        folder = self.case_dir(config, case.id)
        channels = len(manifest.channel_names)
        cached = self._load(folder, fingerprint, channels)
        if cached is not None and not _labels_outside(cached, manifest.label_values, folder):
            return cached
        start = time.perf_counter()
        result = preprocess_case(load_case(manifest, case, root), config)
        self._store(folder, result, fingerprint, manifest, case, root, config)
        if progress:
            print(f"preprocessed {case.id} in {time.perf_counter() - start:.1f} s", file=sys.stderr)
        for wait_s in RELOAD_WAITS_S:
            # None: another process is swapping in its own copy of the entry (the old one is moved aside
            # for a moment) or replaced it with a different version; wait for the first to finish
            time.sleep(wait_s)
            loaded = self._load(folder, fingerprint, channels)
            if loaded is not None and not _labels_outside(loaded, manifest.label_values, folder):
                return loaded
        raise LesionsegError("cache entry changed while it was written; run again", folder)

    def _load(
        self, folder: Path, fingerprint: str, channels: int | None = None, warn: bool = True
    ) -> PreprocessedCase | None:
        """The valid entry in ``folder``, or None: missing or stale silently, damaged with a warning."""
        damaged = _damaged if warn else (lambda folder, problem: None)
        try:
            source = json.loads((folder / "source.json").read_text())
        except FileNotFoundError:
            return None  # not computed yet
        except (OSError, ValueError) as exc:
            return damaged(folder, f"unreadable source.json ({_first_line(exc)})")
        if not isinstance(source, dict) or source.get("fingerprint") != fingerprint:
            return None  # input files or options changed: recompute
        if source.get("format") != CACHE_FORMAT:
            return None  # the older layout: recompute
        try:
            record = PreprocessRecord.from_json((folder / "record.json").read_text(), folder / "record.json")
            with np.load(folder / ARRAYS, allow_pickle=False) as data:
                arrays = {name: data[name] for name in data.files}
        except Exception as exc:  # noqa: BLE001  truncated zip, bad CRC, zero bytes, missing file...
            return damaged(folder, f"unreadable ({_first_line(exc)})")
        problem = _check_arrays(arrays, record, bool(source.get("has_label")), channels)
        if problem:
            return damaged(folder, problem)
        for array in arrays.values():
            array.setflags(write=False)
        return PreprocessedCase(arrays["image"], arrays.get("label"), arrays["mask"], record)

    def _store(
        self,
        folder: Path,
        result: PreprocessedCase,
        fingerprint: str,
        manifest: Manifest,
        case: Case,
        root: str | Path,
        config: PreprocessConfig,
    ) -> None:
        parent = folder.parent
        parent.mkdir(parents=True, exist_ok=True)
        if not (parent / "config.json").exists():
            dump_config(config, parent / "config.json")
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", suffix=".tmp", dir=parent))
        try:
            arrays = {
                "image": np.ascontiguousarray(result.image, dtype=np.float32),
                "mask": np.ascontiguousarray(result.mask, dtype=np.uint8),
            }
            if result.label is not None:
                arrays["label"] = np.ascontiguousarray(result.label, dtype=np.uint8)
            with atomic_output(tmp / ARRAYS) as path:
                np.savez_compressed(path, **arrays)
            with atomic_output(tmp / "record.json") as path:
                path.write_text(result.record.to_json())
            source = {
                "format": CACHE_FORMAT,
                "fingerprint": fingerprint,
                "case": case.id,
                "manifest": manifest.name,
                "has_label": result.label is not None,
                "files": source_files(manifest, case, root),
            }
            with atomic_output(tmp / "source.json") as path:
                path.write_text(json.dumps(source, indent=1) + "\n")
            _replace_dir(tmp, folder)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def _damaged(folder: Path, problem: str) -> None:
    """Warn (one line on stderr) that the entry in ``folder`` is bad and will be rebuilt."""
    log.warning("lesionseg: warning: %s: cache entry %s; rebuilding it", folder, problem)
    return None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]


def _labels_outside(case: PreprocessedCase, label_values: set[int], folder: Path | None = None) -> bool:
    """True when the cached label holds values that are not among the manifest's labels (a 7 in a 0/1
    set would be trained on); with ``folder``, the entry is reported as damaged (one warning line)."""
    if case.label is None:
        return False
    extra = sorted(set(np.unique(case.label).tolist()) - set(label_values))
    if extra and folder is not None:
        _damaged(folder, f"has label values {extra} outside the manifest's labels {sorted(label_values)}")
    return bool(extra)


def _check_arrays(
    arrays: dict[str, np.ndarray], record: PreprocessRecord, has_label: bool, channels: int | None
) -> str:
    """'' when the arrays of an entry agree with its record and the manifest's channel count, else why not."""
    not_arrays = sorted(name for name, value in arrays.items() if not isinstance(value, np.ndarray))
    if not_arrays:  # np.load hands back a member without the .npy magic (e.g. zero bytes) as bytes
        return f"has member(s) {', '.join(not_arrays)} that are not arrays"
    shape = tuple(record.shape)
    image, mask, label = arrays.get("image"), arrays.get("mask"), arrays.get("label")
    if image is None or mask is None:
        return "is incomplete (no image or mask)"
    if image.dtype != np.float32 or image.ndim != 4 or image.shape[1:] != shape:
        return f"has an image of {image.dtype} {image.shape}, expected float32 (C, {shape})"
    if channels is not None and image.shape[0] != channels:
        return f"has {image.shape[0]} image channel(s), the manifest {channels}"
    if mask.dtype != np.uint8 or mask.shape != shape:
        return f"has a mask of {mask.dtype} {mask.shape}, expected uint8 {shape}"
    if has_label != (label is not None):
        return "has no label" if has_label else "has an unexpected label"
    if label is not None and (label.dtype != np.uint8 or label.shape != shape):
        return f"has a label of {label.dtype} {label.shape}, expected uint8 {shape} like the image"
    if not np.isfinite(image).all():
        return "has non-finite image values"
    return ""


def _replace_dir(new: Path, final: Path) -> None:
    """Rename ``new`` to ``final``; an existing ``final`` is moved aside first and then deleted."""
    old = None
    if final.exists():
        old = final.with_name(f".{final.name}-{os.getpid()}-{time.monotonic_ns()}.old")
        os.replace(final, old)
    try:
        os.replace(new, final)
    except OSError:
        if not final.exists():  # not a race with another writer: a real failure
            raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def config_key(config: PreprocessConfig) -> str:
    """The cache folder name for ``config``: a hash of its JSON form and of the record format."""
    return config_hash({"record_version": RECORD_VERSION, "config": to_dict(config)})


def safe_name(case_id: str) -> str:
    """``case_id`` as one folder name (other characters become '_', plus a short hash when changed)."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", case_id).lstrip(".") or "_"
    if safe != case_id:
        safe += "-" + hashlib.sha1(case_id.encode()).hexdigest()[:6]
    return safe


def _spec_paths(spec: ImageSpec, root: Path) -> list[Path]:
    if spec.slices is None:
        return [root / str(spec.path)]
    paths = sorted(root.glob(spec.slices))
    if spec.exclude:
        excluded = set(root.glob(spec.exclude))
        paths = [p for p in paths if p not in excluded]
    return paths


def source_files(manifest: Manifest, case: Case, root: str | Path) -> list[dict]:
    """Every input file of ``case``, with its role, reading options, size and mtime (-1 when missing)."""
    root = Path(root)
    roles = [(f"image:{ch}", case.images[ch]) for ch in manifest.channel_names]
    roles += [("label", case.label), ("mask", case.mask)]
    files = []
    for role, spec in roles:
        if spec is None:
            continue
        for path in _spec_paths(spec, root):
            try:
                stat = path.stat()
                size, mtime = stat.st_size, stat.st_mtime_ns
            except OSError:
                size, mtime = -1, -1
            files.append(
                {
                    "role": role,
                    "spec": spec.to_json(),
                    "path": str(path.resolve()),
                    "size": size,
                    "mtime_ns": mtime,
                }
            )
    return files


def source_fingerprint(manifest: Manifest, case: Case, root: str | Path) -> str:
    """A hash of the case's input files (paths, sizes, mtimes), reading options, label values and, when
    present, ``label_slices``."""
    payload = {"files": source_files(manifest, case, root), "labels": manifest.labels}
    if case.label_slices is not None:  # where a label of only these slices is placed
        payload["label_slices"] = list(case.label_slices)
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
