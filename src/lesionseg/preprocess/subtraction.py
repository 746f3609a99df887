"""Joint intensity normalisation of two registered FLAIRs of one patient and their subtraction image.

Subtraction of serial FLAIRs is the field's evidence of new and enlarging lesions (Battaglini et al.,
"Automated identification of brain new lesions in multiple sclerosis using subtraction images", JMRI 2014;
Ganiler et al., Neuroradiology 2014; the methods compared by Lesjak et al., Neuroinformatics 2016). Both
images must first share one intensity scale: here study 1 is mapped onto study 2 by piecewise-linear
matching of their quantiles inside the joint brain mask (Nyul and Udupa's landmark method, with the
landmarks at ``QUANTILES``), and both are then divided by study 2's brain interquartile range about its
median. The subtraction image (study 2 - study 1) is expressed in units of its own robust spread inside the
brain (1.4826 x median absolute deviation), so a threshold on it reads as "standard deviations of the
scan-to-scan difference" whatever the scanner's scale. Positive = brighter at study 2.
"""

from __future__ import annotations

import numpy as np

QUANTILES = (1.0, 5.0, 10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0)


def joint_normalise(
    earlier: np.ndarray, later: np.ndarray, brain: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(earlier, later) as float32 on one scale: 0 at study 2's brain median, 1 = its interquartile range.

    ``earlier``, ``later``: (X, Y, Z) images on one grid; ``brain``: the joint brain mask (X, Y, Z), not
    empty. ``earlier`` is mapped through the piecewise-linear function that sends its brain quantiles to
    ``later``'s (extrapolated linearly beyond the outer landmarks).
    """
    inside = np.asarray(brain) > 0
    if not inside.any():
        raise ValueError("joint brain mask is empty")
    q1 = np.percentile(earlier[inside], QUANTILES)
    q2 = np.percentile(later[inside], QUANTILES)
    # strictly rising landmarks (a flat stretch of the histogram would divide by zero below)
    q1 = np.maximum.accumulate(q1 + np.arange(q1.size) * 1e-6 * max(float(np.ptp(q1)), 1.0))
    mapped = np.interp(earlier, q1, q2)
    low, high = earlier < q1[0], earlier > q1[-1]
    slope_low = (q2[1] - q2[0]) / (q1[1] - q1[0])
    slope_high = (q2[-1] - q2[-2]) / (q1[-1] - q1[-2])
    mapped[low] = q2[0] + (earlier[low] - q1[0]) * slope_low
    mapped[high] = q2[-1] + (earlier[high] - q1[-1]) * slope_high
    centre = float(np.median(later[inside]))
    p25, p75 = np.percentile(later[inside], (25.0, 75.0))
    scale = float(p75 - p25) or 1.0
    return ((mapped - centre) / scale).astype(np.float32), ((later - centre) / scale).astype(np.float32)


def subtraction_z(earlier: np.ndarray, later: np.ndarray, brain: np.ndarray) -> np.ndarray:
    """(later - earlier) in robust standard deviations of the difference inside ``brain``; 0 outside it.

    ``earlier``, ``later``: jointly normalised images (:func:`joint_normalise`) on one grid.
    """
    inside = np.asarray(brain) > 0
    difference = np.asarray(later, dtype=np.float64) - np.asarray(earlier, dtype=np.float64)
    values = difference[inside]
    centre = float(np.median(values))
    spread = 1.4826 * float(np.median(np.abs(values - centre)))
    spread = spread if spread > 0 else float(values.std()) or 1.0
    return np.where(inside, (difference - centre) / spread, 0.0).astype(np.float32)
