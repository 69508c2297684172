"""Turn one work unit (see `ldct_tf.prepare.plan`) into slice examples: LDCT/NDCT pairs with
lesion labels.

Pure functions of the unit and the config, seeded from the element's identity (master seed, series
key, slice index, role), never from the worker: re-running gives the same examples on any runner
with any number of workers.

- synthetic: the phantom is scanned at full dose (NDCT) and at the dose fraction (LDCT) with
  independent noise; a lesion goes into the object before the scan.
- dicom: the image is the NDCT; the lesion is added to it, then the LDCT is made by
  projection-domain noise insertion (`simulate.simulate_low_dose`).
- paired-dicom: real NDCT/LDCT pairs; the lesion is added to both images. Their dose was never
  simulated and the data do not state it: records give ``dose_fraction`` as NaN (unknown), not
  the config's `dose_fraction` (see `DataConfig.simulated_dose_fraction`).

Train and val slices carry a lesion or not (balanced by `Unit.label_offset`); lesion-absent slices
record the sham lesion (lesions from `[lesion]`). With `[lesion_variants]` ``count`` > 0, each train
slice also gives that many lesion-present variants (lesions from that section, each at its own site
with its own noise). Test slices come as matched twins sharing a
``pair_id``: the same slice with the lesion and without it at the same place (independent noise
where the source is simulated), ``lesion_test.pairs_per_slice`` pairs per slice, each at its own
site, with lesions from `[lesion_test]`: the observer study's task, tuned apart from training's.
"""

from __future__ import annotations

import math
from typing import Iterator

import numpy as np

from ldct_tf import dicom
from ldct_tf.config import Config
from ldct_tf.ct import lesions, phantoms, simulate
from ldct_tf.dicom.path_labels import PathLabels
from ldct_tf.errors import LdctError
from ldct_tf.prepare.plan import Unit, stable_int
from ldct_tf.records import schema as F

# Roles in the per-element seed, so the draws of one slice never share a random stream.
_LESION, _NDCT, _LDCT = 1, 2, 3
_VARIANT = 100  # the twin index (lesion site and noise) of the first `[lesion_variants]` example
UNKNOWN_DOSE = math.nan  # the records' dose_fraction where the run does not know the LDCT's dose


def unit_examples(unit: Unit, config: Config, salt: str | None = None
                  ) -> Iterator[tuple[str, object, object]]:
    """Yield ``("example", split, values)`` per example and ``("skipped", path, reason)`` per
    unusable file or slice; ``values`` maps record keys (`ldct_tf.records.schema`) to values."""
    if unit.source == "synthetic":
        yield from _synthetic(unit, config)
    else:
        yield from _dicom(unit, config, salt)


def slice_rng(config: Config, series_key: str, slice_index: int, role: int, twin: int = 0):
    return np.random.default_rng(
        [config.data.seed, stable_int(series_key), slice_index, role, twin])


def _synthetic(unit: Unit, config: Config):
    data, kwargs = config.data, config.scanner.simulate_kwargs()
    spacing = data.pixel_spacing_mm
    for k in range(unit.n_slices):
        obj = phantoms.make_phantom(data.image_size, spacing,
                                    seed=[data.seed, unit.series_index, k])

        def scans(lesion: lesions.Lesion, twin: int):
            hu = lesions.insert_lesion(obj, lesion)
            ndct, ldct = simulate.scans(
                hu, spacing, [1.0, data.dose_fraction],
                [slice_rng(config, unit.series_key, k, role, twin) for role in (_NDCT, _LDCT)],
                **kwargs)
            return ndct, ldct

        yield from _guarded(f"synthetic series {unit.series_key} slice {k}", _labelled(
            unit, config, k, obj, (spacing, spacing), scans))


def _dicom(unit: Unit, config: Config, salt: str | None):
    """Skipped entries name files by their `PathLabels` (real paths with ``data.keep_paths``)."""
    labels = PathLabels(unit.root, salt or dicom.DEFAULT_SALT, config.data.keep_paths)
    try:
        result = dicom.read_ct_series(list(unit.files), salt=salt, root=unit.root, labels=labels)
    except dicom.NoUsableSliceError as exc:
        for path, reason in exc.skipped:
            yield ("skipped", labels(path), reason)
        return
    for path, reason in result.skipped:
        yield ("skipped", labels(path), reason)
    if unit.source == "paired-dicom":
        try:
            pairs = dicom.find_dose_pairs(result, labels)
        except LdctError as exc:
            yield ("skipped", labels(unit.root), f"patient not paired: {exc}")
            return
        for pair in pairs:
            yield from _paired_slices(unit, config, pair, labels)
    else:
        for series in result.series:
            yield from _ndct_slices(unit, config, series, labels)


def _ndct_slices(unit: Unit, config: Config, series: dicom.CtSeries, labels: PathLabels):
    dose, kwargs = config.data.dose_fraction, config.scanner.simulate_kwargs()
    spacing = float(np.mean(series.pixel_spacing_mm))
    for k in range(series.n_slices):
        ndct_image = series.hu[k]

        def images(lesion: lesions.Lesion, twin: int, k=k, ndct_image=ndct_image):
            ndct = lesions.insert_lesion(ndct_image, lesion)
            rng = slice_rng(config, series.series_key, k, _LDCT, twin)
            return ndct, simulate.simulate_low_dose(ndct, spacing, dose, rng, **kwargs)

        yield from _guarded(labels(series.source_paths[k]), _labelled(
            unit, config, k, ndct_image, series.pixel_spacing_mm, images,
            series_key=series.series_key))


def _paired_slices(unit: Unit, config: Config, pair: dicom.PairedSeries, labels: PathLabels):
    for k in range(pair.n_slices):
        def images(lesion: lesions.Lesion, twin: int, k=k):
            return (lesions.insert_lesion(pair.ndct_hu[k], lesion),
                    lesions.insert_lesion(pair.ldct_hu[k], lesion))

        yield from _guarded(f"{labels(unit.root)} (paired series {pair.series_key} slice {k})",
                            _labelled(unit, config, k, pair.ndct_hu[k], pair.pixel_spacing_mm,
                                      images, series_key=pair.series_key))


def _guarded(where: str, examples: Iterator):
    """Examples of one slice, or one ``skipped`` entry when the slice has no room for a lesion."""
    try:
        yield from list(examples)
    except lesions.NoRoomForLesion as exc:
        yield ("skipped", where, f"slice not used: {exc}")


def _labelled(unit: Unit, config: Config, k: int, anatomy: np.ndarray, spacing, make_images,
              series_key: str | None = None):
    """The example(s) of slice ``k``: one labelled example, or matched twins in the test split.

    ``make_images(lesion, twin) -> (ndct, ldct)`` renders the slice with ``lesion`` (a sham one
    for the absent case); ``twin`` separates the noise of the two test twins. The recorded dose
    is the simulated one, or `UNKNOWN_DOSE` for real pairs.
    """
    series_key = series_key or unit.series_key
    dose = config.data.simulated_dose_fraction
    dose = UNKNOWN_DOSE if dose is None else dose
    if unit.split == "test":
        # the observer study's task (`[lesion_test]`): matched twins, each pair at its own site
        cases = []
        for site in range(config.lesion_test.pairs_per_slice):
            lesion = lesions.sample_lesion(anatomy, float(np.mean(spacing)),
                                           slice_rng(config, series_key, k, _LESION, site),
                                           **config.lesion_test.sample_kwargs())
            pair_id = stable_int("pair", config.data.seed, series_key, k, site)
            cases += [(1, lesion, 2 * site, pair_id), (0, lesion.sham(), 2 * site + 1, pair_id)]
    else:
        lesion = lesions.sample_lesion(anatomy, float(np.mean(spacing)),
                                       slice_rng(config, series_key, k, _LESION),
                                       **config.lesion.sample_kwargs())
        present = (k + unit.label_offset) % 2 == 0
        cases = [(1, lesion, 0, -1)] if present else [(0, lesion.sham(), 0, -1)]
        if unit.split == "train":  # `[lesion_variants]`: extra lesions, each at its own site
            cases += [(1, lesions.sample_lesion(anatomy, float(np.mean(spacing)),
                                                slice_rng(config, series_key, k, _LESION,
                                                          _VARIANT + v),
                                                **config.lesion_variants.sample_kwargs()),
                       _VARIANT + v, -1) for v in range(config.lesion_variants.count)]
    for label, case, twin, pair_id in cases:
        ndct, ldct = make_images(case, twin)
        yield ("example", unit.split, {
            F.LDCT: ldct, F.NDCT: ndct, F.LABEL: label,
            F.HEIGHT: ndct.shape[0], F.WIDTH: ndct.shape[1],
            F.PIXEL_SPACING_MM: tuple(float(s) for s in np.broadcast_to(spacing, (2,))),
            F.DOSE_FRACTION: dose, F.SERIES_KEY: series_key, F.SLICE_INDEX: k,
            F.LESION_ROW: case.row, F.LESION_COL: case.col,
            F.LESION_RADIUS_PX: case.radius_px, F.LESION_CONTRAST_HU: case.contrast_hu,
            F.PAIR_ID: pair_id,
        })
