"""Training batches drawn from preprocessed cases: slices, 2.5D triplets, patches, augmentation, pixels.

An epoch is a fixed number of steps of randomly drawn slices (TS-CNN: 50 epochs x 50 steps), all drawn from
one numpy Generator owned by the trainer, so a run is reproducible and resumable from its saved state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
from scipy import ndimage

from lesionseg.augment import (
    LESION_CONTRAST_RANGE,
    AffineParams,
    apply_affine_2d,
    apply_intensity,
    drop_modalities,
    reduce_lesion_contrast,
    sample_intensity_params,
    sample_lesion_params,
    sample_tscnn_params,
    sample_wmh_params,
)
from lesionseg.augment.lesions import add_synthetic_lesions, carve_lesion, paste_lesion
from lesionseg.config.train import TrainConfig
from lesionseg.data.slicing import extract_slice, random_patch_origin, select_slices


class PreprocessedLike(Protocol):
    image: np.ndarray  # (C, X, Y, Z)
    label: np.ndarray | None  # (X, Y, Z)
    mask: np.ndarray  # (X, Y, Z)


@dataclass(frozen=True)
class SliceEntry:
    case: int
    z: int
    augmentation: AffineParams | None = None  # fixed copy (WMH); TS-CNN draws a new one per use


def class_lookup(label_values: list[int]) -> np.ndarray:
    """Map label values (e.g. 0, 1, 2, 4) to class indices 0..K-1 through a lookup table."""
    lut = np.zeros(max(label_values) + 1, dtype=np.int64)
    for index, value in enumerate(sorted(label_values)):
        lut[value] = index
    return lut


class SliceBatcher:
    """Builds the list of training slices once, then draws batches from it."""

    def __init__(
        self,
        cases: list[PreprocessedLike],
        cfg: TrainConfig,
        label_values: list[int],
        num_outputs: int,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.cases, self.cfg, self.num_outputs = cases, cfg, num_outputs
        self.lut = class_lookup(label_values)
        setup_rng = np.random.default_rng([cfg.seed, 7919])
        entries: list[SliceEntry] = []
        for index, case in enumerate(cases):
            how = cfg.lesion_slice_ratio if cfg.lesion_slice_ratio is not None else cfg.slice_filter
            labelled = getattr(case, "labelled_slices", None)  # None: every slice has a reference label
            zs = select_slices(case.label, case.mask, how, setup_rng)
            if labelled is not None:
                zs = np.intersect1d(zs, labelled)
            if len(zs) == 0:  # a case with no lesion still teaches background
                zs = select_slices(case.label, case.mask, "brain")
                if labelled is not None:
                    zs = np.intersect1d(zs, labelled)
            for z in zs:
                entries.append(SliceEntry(index, int(z)))
                lesion_slice = case.label is not None and bool(np.any(case.label[..., z]))
                if cfg.augmentation == "wmh" and lesion_slice:
                    entries += [
                        SliceEntry(index, int(z), sample_wmh_params(setup_rng))
                        for _ in range(cfg.augmented_copies)
                    ]
        if not entries:
            raise ValueError("no training slices: every case has an empty brain mask")
        self.entries = entries[rank::world_size] or entries
        # lesion_sample_fraction: these entries (slices with lesion) feed the forced share of each batch
        self.lesion_entries = [
            i
            for i, e in enumerate(self.entries)
            if cases[e.case].label is not None and bool(np.any(cases[e.case].label[..., e.z]))
        ]
        subjects = [getattr(cases[e.case], "subject", None) or f"case {e.case}" for e in self.entries]
        self.subjects = subjects
        self.weights = subject_balanced_weights(subjects)
        self.lesion_weights = subject_balanced_weights([subjects[i] for i in self.lesion_entries])

    def __len__(self) -> int:
        return len(self.entries)

    def sample(
        self, entry: SliceEntry, rng: np.random.Generator, on_lesion: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """One (context*C, h, w) image and (h, w) class-index target; ``on_lesion`` centres the patch on
        a lesion pixel (the forced share of ``lesion_sample_fraction``). A case with a teacher's soft target
        (distillation) gets it as one more channel at the end of the image, augmented with the slice."""
        case = self.cases[entry.case]
        image = extract_slice(case.image, entry.z, self.cfg.context_slices)
        label = (
            np.zeros(image.shape[1:], np.int64) if case.label is None else self.lut[case.label[..., entry.z]]
        )
        soft = getattr(case, "soft", None)
        soft = None if soft is None else np.asarray(soft[..., entry.z], dtype=np.float32)
        before = label
        brain = np.asarray(case.mask[..., entry.z]) > 0
        if self.cfg.lesion_transplant and self.lesion_entries and rng.random() < self.cfg.lesion_transplant:
            image, label = self.transplant(image, label, brain, entry, rng)
        if self.cfg.synthetic_lesions and rng.random() < self.cfg.synthetic_lesions:
            image, label = add_synthetic_lesions(image, label, brain, case.image.shape[0], rng)
        if soft is not None and label is not before:  # a pasted lesion is a lesion to the teacher too
            soft = np.where(label != before, (label > 0).astype(np.float32), soft)
        params = entry.augmentation
        if self.cfg.augmentation == "tscnn":
            params = sample_tscnn_params(rng)
        elif self.cfg.augmentation == "lesion":
            params = sample_lesion_params(rng, self.cfg.flip_axes)
        if params is not None:
            stacked = image if soft is None else np.concatenate([image, soft[None]])
            stacked, label = apply_affine_2d(stacked, label, params)
            if soft is not None:  # the affine's intensity factor is for the image, not the probability
                image, soft = stacked[:-1], stacked[-1] / (params.intensity or 1.0)
            else:
                image = stacked
        if self.cfg.lesion_contrast > 0 and rng.random() < self.cfg.lesion_contrast:
            image = reduce_lesion_contrast(image, label > 0, float(rng.uniform(*LESION_CONTRAST_RANGE)))
        if self.cfg.intensity_augmentation:
            image = self.intensity(image, case.image.shape[0], rng)
        if self.cfg.modality_dropout > 0 and rng.random() < self.cfg.modality_dropout:  # after: stays blank
            image = drop_modalities(image, case.image.shape[0])
        if soft is not None:
            image = np.concatenate([image, np.clip(soft, 0.0, 1.0)[None]])
        if self.cfg.patch_size is not None:
            ph, pw = (min(p, s) for p, s in zip(self.cfg.patch_size, image.shape[1:], strict=True))
            probability = 1.0 if on_lesion else self.cfg.lesion_patch_probability
            r, c = random_patch_origin(image.shape[1:], (ph, pw), rng, label, probability)
            image, label = image[:, r : r + ph, c : c + pw], label[r : r + ph, c : c + pw]
        return np.ascontiguousarray(image), np.ascontiguousarray(label)

    def transplant(
        self,
        image: np.ndarray,
        label: np.ndarray,
        brain: np.ndarray,
        entry: SliceEntry,
        rng: np.random.Generator,
    ) -> tuple[np.ndarray, np.ndarray]:
        """One lesion of a lesion slice of another subject (any subject when there is one) pasted in."""
        subject = getattr(self.cases[entry.case], "subject", None) or f"case {entry.case}"
        donors = [i for i in self.lesion_entries if self.subjects[i] != subject] or self.lesion_entries
        donor = self.entries[donors[rng.integers(len(donors))]]
        case = self.cases[donor.case]
        donor_label = self.lut[case.label[..., donor.z]]
        components, count = ndimage.label(donor_label > 0, structure=np.ones((3, 3)))
        piece = carve_lesion(
            extract_slice(case.image, donor.z, self.cfg.context_slices),
            donor_label,
            np.asarray(case.mask[..., donor.z]) > 0,
            components == rng.integers(1, count + 1),
        )
        return paste_lesion(image, label, brain, piece, rng)

    def intensity(self, image: np.ndarray, modalities: int, rng: np.random.Generator) -> np.ndarray:
        """One intensity draw for the whole sample, or (strong) one per modality, shared by that
        modality's context slices (channels are ordered [t-1 modalities, t modalities, t+1 modalities])."""
        if self.cfg.intensity_strength != "strong":
            return apply_intensity(image, sample_intensity_params(rng))
        out = image.copy()
        for m in range(modalities):
            params = sample_intensity_params(rng, strong=True)
            out[m::modalities] = apply_intensity(image[m::modalities], params)
        return out

    def draw(self, count: int, weights: np.ndarray, rng: np.random.Generator, size: int) -> np.ndarray:
        """``size`` indices into ``count`` items: uniform ("slice"), or by ``weights`` ("subject")."""
        if self.cfg.sample_balance == "subject":
            return rng.choice(count, size=size, p=weights)
        return rng.integers(count, size=size)

    def batch(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """``images`` (B, context*C, h, w) float32, ``targets`` (B, h, w) int64 and, for PixelNet,
        ``coords`` (B, N, 2) sampled pixels with ``pixel_targets`` (B, N)."""
        picks = self.draw(len(self.entries), self.weights, rng, self.cfg.batch_size)
        forced = 0
        if self.cfg.lesion_sample_fraction is not None and self.lesion_entries:
            # nnU-Net's oversampling: a fixed share of every batch is drawn from lesion slices
            forced = int(round(self.cfg.lesion_sample_fraction * self.cfg.batch_size))
            lesion = np.asarray(self.lesion_entries)
            picks[:forced] = lesion[self.draw(len(lesion), self.lesion_weights, rng, forced)]
        samples = [self.sample(self.entries[i], rng, k < forced) for k, i in enumerate(picks)]
        samples = pad_to_common_size(samples)
        out = {
            "images": np.stack([s[0] for s in samples]).astype(np.float32),
            "targets": np.stack([s[1] for s in samples]),
        }
        if getattr(self.cases[0], "soft", None) is not None:  # distillation: the teacher in the last channel
            out["soft"] = np.ascontiguousarray(out["images"][:, -1])
            out["images"] = np.ascontiguousarray(out["images"][:, :-1])
        if self.cfg.pixel_sampler != "none":
            from lesionseg.data.pixel_samplers import class_balanced_pixels, uniform_pixels

            sampler = class_balanced_pixels if self.cfg.pixel_sampler == "class_balanced" else uniform_pixels
            coords = np.stack([sampler(t, self.cfg.pixels_per_image, rng) for t in out["targets"]])
            out["coords"] = coords.astype(np.int64)
            rows, cols = coords[..., 0], coords[..., 1]
            out["pixel_targets"] = np.take_along_axis(
                out["targets"].reshape(len(samples), -1), rows * out["targets"].shape[-1] + cols, axis=1
            )
        return out


def subject_balanced_weights(subjects: list[str]) -> np.ndarray:
    """Probabilities over items that give every subject the same total: 1 / (subjects x its items)."""
    if not subjects:
        return np.zeros(0)
    names, inverse, counts = np.unique(np.asarray(subjects), return_inverse=True, return_counts=True)
    return 1.0 / (len(names) * counts[inverse])


def steps_per_epoch_for(steps_per_epoch: int, training_slices: int, batch_size: int) -> int:
    """Steps in one epoch: ``steps_per_epoch`` when >= 1; 0 means one pass over the training slices, the
    WMH thesis' (Keras) epoch: ceil(training_slices / batch_size), its fixed augmented copies counted as
    slices. ``training_slices`` is ``len(SliceBatcher)`` (with several processes, each one's share, so the
    processes together make one pass)."""
    if steps_per_epoch < 0 or training_slices < 1 or batch_size < 1:
        raise ValueError(
            f"need steps_per_epoch >= 0, training_slices >= 1, batch_size >= 1; got {steps_per_epoch}, "
            f"{training_slices}, {batch_size}"
        )
    return steps_per_epoch if steps_per_epoch else -(-training_slices // batch_size)


def pad_to_common_size(samples: list[tuple[np.ndarray, np.ndarray]]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Zero-pad (bottom and right) whole slices of different cases to the batch's largest (h, w); 0 is the
    z-scored background and the background label."""
    h = max(s[0].shape[1] for s in samples)
    w = max(s[0].shape[2] for s in samples)
    out = []
    for image, label in samples:
        dh, dw = h - image.shape[1], w - image.shape[2]
        if dh or dw:
            image = np.pad(image, ((0, 0), (0, dh), (0, dw)))
            label = np.pad(label, ((0, dh), (0, dw)))
        out.append((image, label))
    return out
