"""Lesion localization: a scanning matched-filter observer and LROC analysis on matched twins.

Detection with the location known (`ldct_tf.evaluate.observers`, signal-known-exactly) cannot tell a
denoiser that keeps a lesion from one that smears it into a blob somewhere nearby, or one that
paints lesion-like structure elsewhere. Localization ROC (LROC) analysis asks the observer to say
*where* the lesion is as well as how confident it is (Swensson 1996).

Observer (`scan`). The template is a zero-mean matched filter of the known lesion profile: a
disk of radius ``R`` with the same erfc edge (Gaussian edge sigma 0.5 px) as `ldct_tf.ct.lesions`
(or that module's Gaussian profile), on a square window of side ``2*ceil(2R)+1``, minus its mean
over that window (so a flat background gives zero response), times the lesion's sign (+1 bright,
-1 dark). It is correlated with the image at every pixel site within the search disk of radius
``search_radius_px`` (4 R by default) around the lesion site; the rating is the maximum response
and the reported location its argmax. Sites near the image border see the image mirrored
('reflect' edges, as `scipy.ndimage`). The same scan, around the same site, is run on the
lesion-absent twin: its rating is the false-positive rating of that anatomy.

A present case is *correctly localized* when the argmax lies within ``hit_factor * R`` (1 R by
default) of the true centre.

LROC curve (`lroc_curve`). For a threshold ``t``: ``FPF(t)`` = fraction of absent cases rated
``>= t``; ``TPF_L(t)`` = fraction of present cases rated ``>= t`` *and* correctly localized. As
``t`` falls the curve rises from (0, 0) to (1, P_CL), with ``P_CL`` = `fraction_localized`, the
fraction of present cases correctly localized, not to (1, 1) as an ROC curve does.

LROC area (`lroc_area`). The nonparametric (Wilcoxon-type) estimator of the area under the
LROC curve (Popescu, "Nonparametric ROC and LROC analysis", Med. Phys. 34, 2007; Khurd & Gindi,
"Decision strategies that maximize the area under the LROC curve", IEEE TMI 24, 2005)::

    A_LROC = 1/(Np Na) sum_i sum_j c_i H(r_i - a_j),   H(x) = 1 (x > 0), 1/2 (x = 0), 0 (x < 0)

with ``r_i`` the present ratings, ``c_i`` in {0, 1} their correct-localization flags and ``a_j``
the absent ratings. It is the trapezoidal area under the empirical LROC curve, and the
probability that a random present case is both correctly localized and rated above a random
absent one. With every ``c_i = 1`` it is the ordinary ROC AUC (Mann-Whitney); it never exceeds
``P_CL``.

Chance (`chance_fraction`). A rating that ignores the signal puts its argmax anywhere in the
search disk, so it localizes a fraction ``(hit_factor / search_factor)^2`` of the cases (area of
the hit disk over that of the search disk); on the pixel grid the count ratio of the two disks'
sites differs slightly.

References:
  R. G. Swensson, "Unified measurement of observer performance in detecting and localizing target
  objects on images", Med. Phys. 23(10), 1709-1725 (1996).
  L. M. Popescu, "Nonparametric ROC and LROC analysis", Med. Phys. 34(5), 1556-1564 (2007).
  P. Khurd and G. Gindi, "Decision strategies that maximize the area under the LROC curve",
  IEEE Trans. Med. Imaging 24(12), 1626-1636 (2005).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from scipy import ndimage, special

DEFAULT_SEARCH_FACTOR = 4.0  # search disk radius, in lesion radii
DEFAULT_HIT_FACTOR = 1.0  # a present case is localized when the argmax is this close (radii)
_EDGE_SIGMA_PX = 0.5  # `ldct_tf.ct.lesions`' disk edge
_PROFILES = ("disk", "gaussian")


def template(radius_px: float, sign: float = 1.0, profile: str = "disk") -> np.ndarray:
    """The zero-mean matched filter ``[2h+1, 2h+1]``, ``h = ceil(2 R)``: the lesion profile
    centred on the window minus its window mean, times ``sign`` (its sum is 0)."""
    if not radius_px > 0:
        raise ValueError(f"radius_px must be > 0, got {radius_px}")
    if sign not in (1, -1, 1.0, -1.0):
        raise ValueError(f"sign must be +1 or -1, got {sign}")
    if profile not in _PROFILES:
        raise ValueError(f"profile must be one of {_PROFILES}, got {profile!r}")
    h = math.ceil(2.0 * radius_px)
    yy, xx = np.mgrid[-h:h + 1, -h:h + 1]
    r = np.hypot(yy, xx)
    if profile == "disk":
        weight = 0.5 * special.erfc((r - radius_px) / (math.sqrt(2.0) * _EDGE_SIGMA_PX))
    else:  # `ldct_tf.ct.lesions`: radius = half the FWHM
        sigma = radius_px / math.sqrt(2.0 * math.log(2.0))
        weight = np.exp(-r ** 2 / (2.0 * sigma ** 2))
    return float(sign) * (weight - weight.mean())


def search_sites(shape: tuple[int, int], centre: tuple[float, float], search_radius_px: float
                 ) -> np.ndarray:
    """Integer pixel sites ``[n, 2]`` (row, col) of the image within ``search_radius_px`` of
    ``centre`` (row-major order); the nearest in-image pixel when the disk holds none."""
    row, col = float(centre[0]), float(centre[1])
    if search_radius_px < 0:
        raise ValueError(f"search_radius_px must be >= 0, got {search_radius_px}")
    r0 = max(0, math.ceil(row - search_radius_px))
    r1 = min(shape[0] - 1, math.floor(row + search_radius_px))
    c0 = max(0, math.ceil(col - search_radius_px))
    c1 = min(shape[1] - 1, math.floor(col + search_radius_px))
    if r0 <= r1 and c0 <= c1:
        rr, cc = np.mgrid[r0:r1 + 1, c0:c1 + 1]
        inside = np.hypot(rr - row, cc - col) <= search_radius_px
        if inside.any():
            return np.stack([rr[inside], cc[inside]], axis=1)
    nearest = (int(np.clip(round(row), 0, shape[0] - 1)), int(np.clip(round(col), 0, shape[1] - 1)))
    return np.array([nearest], dtype=np.int64)


def response_map(image: np.ndarray, radius_px: float, sign: float = 1.0, profile: str = "disk"
                 ) -> np.ndarray:
    """The template's response at every pixel of ``image`` ('reflect' edges): the full-image
    reference that `scan` evaluates only on the search sites."""
    image = np.asarray(image, np.float64)
    return ndimage.correlate(image, template(radius_px, sign, profile), mode="reflect")


def scan(image: np.ndarray, centre: tuple[float, float], radius_px: float, sign: float,
         search_radius_px: float | None = None, profile: str = "disk"
         ) -> tuple[float, tuple[int, int]]:
    """Scan the matched filter over the search disk around ``centre``.

    Args:
      image: 2-D image (HU).
      centre: (row, col) of the (possible) lesion site, float pixels.
      radius_px: lesion radius R (pixels).
      sign: +1 for a bright lesion, -1 for a dark one.
      search_radius_px: radius of the search disk (pixels); default `DEFAULT_SEARCH_FACTOR` R.
      profile: "disk" (erfc-edged, as `ldct_tf.ct.lesions`) or "gaussian".

    Returns:
      ``(rating, (row, col))``: the maximum response over the search sites and its pixel site
      in full-image coordinates (the first in row-major order on ties).
    """
    image = np.asarray(image, np.float64)
    if image.ndim != 2:
        raise ValueError(f"image must be 2-D, got shape {image.shape}")
    if search_radius_px is None:
        search_radius_px = DEFAULT_SEARCH_FACTOR * radius_px
    kernel = template(radius_px, sign, profile)
    h = kernel.shape[0] // 2
    sites = search_sites(image.shape, centre, search_radius_px)
    # Crop the search box plus the template half-width. Inside the image the crop holds every
    # pixel the template reaches; where it is cut by the image border, reflecting the crop is
    # reflecting the image, so the responses equal those of `response_map`.
    top, left = max(0, sites[:, 0].min() - h), max(0, sites[:, 1].min() - h)
    bottom = min(image.shape[0], sites[:, 0].max() + h + 1)
    right = min(image.shape[1], sites[:, 1].max() + h + 1)
    crop = image[top:bottom, left:right]
    response = ndimage.correlate(crop, kernel, mode="reflect")
    values = response[sites[:, 0] - top, sites[:, 1] - left]
    best = int(np.argmax(values))
    return float(values[best]), (int(sites[best, 0]), int(sites[best, 1]))


def _lesion_fields(lesion) -> tuple[float, float, float, float]:
    """(row, col, radius_px, sign) of a ``(row, col, radius_px, contrast_hu)`` sequence (as
    `ldct_tf.evaluate.study` keeps them) or an object with those attributes
    (`ldct_tf.ct.lesions.Lesion`)."""
    if hasattr(lesion, "radius_px"):
        row, col, radius, contrast = lesion.row, lesion.col, lesion.radius_px, lesion.contrast_hu
    else:
        row, col, radius, contrast = (float(v) for v in tuple(lesion)[:4])
    if contrast == 0:
        raise ValueError("a present lesion needs a nonzero contrast (its sign sets the template)")
    return float(row), float(col), float(radius), math.copysign(1.0, contrast)


def localize_pairs(present_images: Sequence[np.ndarray], absent_images: Sequence[np.ndarray],
                   lesions: Sequence, search_factor: float = DEFAULT_SEARCH_FACTOR,
                   hit_factor: float = DEFAULT_HIT_FACTOR, profile: str = "disk") -> dict:
    """Scan each matched twin pair around the present lesion's site.

    Args:
      present_images, absent_images: 2-D images of the pairs (pair i: same anatomy).
      lesions: per pair, ``(row, col, radius_px, contrast_hu)`` or a `ldct_tf.ct.lesions.Lesion`:
        centre, radius and signed contrast of the present twin's lesion (only the sign of the
        contrast is used).
      search_factor: search disk radius in lesion radii.
      hit_factor: a present case is correct when its argmax is within ``hit_factor * R`` of the
        true centre.
      profile: template profile (see `template`).

    Returns:
      Arrays over pairs: ``present_rating``, ``absent_rating``, ``correct`` (bool),
      ``distance_px`` (argmax to true centre, present), ``present_location`` and
      ``absent_location`` ([pairs, 2], row/col).
    """
    if not len(present_images) == len(absent_images) == len(lesions):
        raise ValueError(f"need one absent image and one lesion per present image, got "
                         f"{len(present_images)}, {len(absent_images)}, {len(lesions)}")
    if not (search_factor > 0 and hit_factor > 0):
        raise ValueError(f"search_factor and hit_factor must be > 0, got {search_factor}, "
                         f"{hit_factor}")
    n = len(lesions)
    out = {"present_rating": np.zeros(n), "absent_rating": np.zeros(n),
           "correct": np.zeros(n, bool), "distance_px": np.zeros(n),
           "present_location": np.zeros((n, 2), np.int64),
           "absent_location": np.zeros((n, 2), np.int64)}
    for i, (present, absent, lesion) in enumerate(zip(present_images, absent_images, lesions)):
        row, col, radius, sign = _lesion_fields(lesion)
        search = search_factor * radius
        rating, where = scan(present, (row, col), radius, sign, search, profile)
        out["present_rating"][i], out["present_location"][i] = rating, where
        out["distance_px"][i] = math.hypot(where[0] - row, where[1] - col)
        out["correct"][i] = out["distance_px"][i] <= hit_factor * radius
        out["absent_rating"][i], out["absent_location"][i] = scan(
            absent, (row, col), radius, sign, search, profile)
    return out


def _present_absent(present_rating, correct, absent_rating):
    r = np.asarray(present_rating, np.float64).ravel()
    c = np.asarray(correct).ravel().astype(bool)
    a = np.asarray(absent_rating, np.float64).ravel()
    if r.shape != c.shape:
        raise ValueError(f"present_rating and correct differ in length: {r.size} vs {c.size}")
    return r, c, a


def lroc_area(present_rating, correct, absent_rating) -> float:
    """The nonparametric area under the LROC curve,
    ``1/(Np Na) sum_i sum_j c_i H(r_i - a_j)`` with ``H(0) = 1/2``. NaN without both classes."""
    r, c, a = _present_absent(present_rating, correct, absent_rating)
    if r.size == 0 or a.size == 0:
        return float("nan")
    a = np.sort(a)
    below = np.searchsorted(a, r, side="left")  # absent ratings < r_i
    ties = np.searchsorted(a, r, side="right") - below
    return float(np.sum(c * (below + 0.5 * ties)) / (r.size * a.size))


def lroc_curve(present_rating, correct, absent_rating) -> tuple[np.ndarray, np.ndarray]:
    """The empirical LROC curve: ``(fpf, tpf_localized)`` from (0, 0) through every distinct
    rating as a threshold (rated ``>=`` it, highest first) to (1, `fraction_localized`)."""
    r, c, a = _present_absent(present_rating, correct, absent_rating)
    if r.size == 0 or a.size == 0:
        raise ValueError("the LROC curve needs present and absent cases")
    thresholds = np.unique(np.concatenate([r, a]))[::-1]
    a_sorted, r_hit = np.sort(a), np.sort(r[c])
    fpf = (a.size - np.searchsorted(a_sorted, thresholds, side="left")) / a.size
    tpf = (r_hit.size - np.searchsorted(r_hit, thresholds, side="left")) / r.size
    return np.concatenate([[0.0], fpf]), np.concatenate([[0.0], tpf])


def fraction_localized(correct) -> float:
    """``P_CL``: the fraction of present cases correctly localized (NaN when there are none)."""
    correct = np.asarray(correct).ravel().astype(bool)
    return float(correct.mean()) if correct.size else float("nan")


def chance_fraction(search_factor: float = DEFAULT_SEARCH_FACTOR,
                    hit_factor: float = DEFAULT_HIT_FACTOR) -> float:
    """The fraction localized by a rating that ignores the signal: ``(hit / search)^2``, the hit
    disk's area over the search disk's (capped at 1)."""
    if not (search_factor > 0 and hit_factor > 0):
        raise ValueError(f"search_factor and hit_factor must be > 0, got {search_factor}, "
                         f"{hit_factor}")
    return float(min(1.0, (hit_factor / search_factor) ** 2))
