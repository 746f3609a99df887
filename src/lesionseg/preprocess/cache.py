"""The on-disk cache of preprocessed cases: ``<cache_dir>/<config-hash>/<case-id>/``.

Each case folder holds ``image.npy`` (C, X, Y, Z) float32, ``mask.npy`` and (when the case has one)
``label.npy`` (X, Y, Z) uint8, ``record.json`` (the PreprocessRecord) and ``source.json`` (the case's input
files with their sizes and modification times). The folder name is a hash of the config; ``source.json``
carries a hash of the inputs, so a case is recomputed when its config or any of its files changes.
Folders are written in a temporary folder beside the final one and renamed into place, so a reader never
sees half a case; ``config.json`` beside the case folders is the resolved config.
"""

from __future__ import annotations

import hashlib
import json
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
from lesionseg.data.manifest import Case, ImageSpec, Manifest, load_case
from lesionseg.errors import LesionsegError
from lesionseg.io import atomic_output
from lesionseg.preprocess.pipeline import PreprocessedCase, preprocess_case
from lesionseg.preprocess.record import RECORD_VERSION, PreprocessRecord


class PreprocessCache:
    """Preprocessed cases on disk, computed on first use and memory-mapped afterwards."""

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
        return (
            self._load(self.case_dir(config, case.id), source_fingerprint(manifest, case, root)) is not None
        )

    def get(
        self,
        manifest: Manifest,
        case: Case | str,
        root: str | Path,
        config: PreprocessConfig,
        progress: bool = False,
    ) -> PreprocessedCase:
        """The preprocessed case, with its arrays as read-only memory maps of the cached .npy files.

        Computes and stores it first when it is missing or stale (config or input files changed).
        ``progress``: print one line to stderr when a case is computed.
        """
        case = manifest.case(case) if isinstance(case, str) else case
        fingerprint = source_fingerprint(manifest, case, root)
        folder = self.case_dir(config, case.id)
        cached = self._load(folder, fingerprint)
        if cached is not None:
            return cached
        start = time.perf_counter()
        result = preprocess_case(load_case(manifest, case, root), config)
        self._store(folder, result, fingerprint, manifest, case, root, config)
        if progress:
            print(f"preprocessed {case.id} in {time.perf_counter() - start:.1f} s", file=sys.stderr)
        loaded = self._load(folder, fingerprint)
        if loaded is None:  # another process replaced it with a different version meanwhile
            raise LesionsegError("cache entry changed while it was written; run again", folder)
        return loaded

    def _load(self, folder: Path, fingerprint: str) -> PreprocessedCase | None:
        try:
            source = json.loads((folder / "source.json").read_text())
            if source.get("fingerprint") != fingerprint:
                return None
            record = PreprocessRecord.from_json((folder / "record.json").read_text(), folder / "record.json")
            image = np.load(folder / "image.npy", mmap_mode="r")
            mask = np.load(folder / "mask.npy", mmap_mode="r")
            label_path = folder / "label.npy"
            label = np.load(label_path, mmap_mode="r") if source.get("has_label") else None
        except (OSError, ValueError, LesionsegError, json.JSONDecodeError):
            return None  # missing or unreadable: recompute
        if image.shape[1:] != tuple(record.shape) or mask.shape != tuple(record.shape):
            return None
        return PreprocessedCase(image, label, mask, record)

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
            _save_npy(tmp / "image.npy", result.image)
            _save_npy(tmp / "mask.npy", result.mask)
            if result.label is not None:
                _save_npy(tmp / "label.npy", result.label)
            with atomic_output(tmp / "record.json") as path:
                path.write_text(result.record.to_json())
            source = {
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


def _save_npy(path: Path, array: np.ndarray) -> None:
    with atomic_output(path) as tmp:
        np.save(tmp, np.ascontiguousarray(array))


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
