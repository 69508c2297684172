"""Work units of `prepare`: which series goes to which split, planned once in the pipeline driver.

A unit is one synthetic phantom series, one DICOM series, or one patient's full/low-dose pair of
series. Splits are made by patient (by series where there is no patient ID): no anatomy is ever in
two splits, because a slice-level split leaks anatomy and inflates every metric. Assignment is a
seeded shuffle of the sorted group keys, then shares by largest remainder, so it is deterministic
and does not depend on the runner or its worker count.

Labels are balanced without global coordination: within a unit, slice ``k`` carries a lesion when
``(k + label_offset) % 2 == 0``, and offsets alternate across the units of a split.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Sequence

import numpy as np

from ldct_tf.config import SPLITS, Config
from ldct_tf.dicom import patient_group_key

# Which splits receive groups first when there are fewer groups than splits: training needs data
# first, then the test split that the evaluation reports on.
_FILL_ORDER = ("train", "test", "val")


@dataclasses.dataclass(frozen=True)
class Unit:
    """One series (or full/low-dose pair) to turn into examples, and its split.

    group_key: patient key (what splits are made by); series_key: anonymous series key.
    files: DICOM files of the unit (empty for synthetic); root: the folder the walk started from.
    series_index: synthetic phantom number; n_slices: synthetic slices (0 = all DICOM slices).
    """

    split: str
    source: str
    group_key: str
    series_key: str
    label_offset: int
    series_index: int = 0
    n_slices: int = 0
    files: tuple[str, ...] = ()
    root: str = ""


def stable_int(*parts: object, bits: int = 62) -> int:
    """A ``bits``-bit integer from the parts' text, the same on every machine and in every process
    (unlike Python's salted ``hash``): the first 8 bytes of the SHA-256 of the parts' ``str``
    joined by "/", read little-endian, shifted right by ``64 - bits``.

    62 bits (the default) fit an int64 record field and a NumPy seed word; 64 bits pick a series'
    first shard (`ldct_tf.prepare.beam`). Existing splits, seeds and shards depend on both values.
    """
    if not 1 <= bits <= 64:
        raise ValueError(f"bits must be in [1, 64], got {bits}")
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> (64 - bits)


def split_counts(n_groups: int, fractions: Sequence[float]) -> dict[str, int]:
    """Groups per split: largest-remainder shares, at least one group for every non-zero share
    while groups last (train first, then test, then val)."""
    shares = dict(zip(SPLITS, fractions))
    counts = {s: 0 for s in SPLITS}
    remaining = n_groups
    for split in _FILL_ORDER:  # the minimum of one
        if remaining and shares[split] > 0:
            counts[split] = 1
            remaining -= 1
    exact = {s: shares[s] * n_groups for s in SPLITS}
    while remaining > 0:
        split = max(SPLITS, key=lambda s: (exact[s] - counts[s], -_FILL_ORDER.index(s)))
        counts[split] += 1
        remaining -= 1
    return counts


def assign_splits(group_keys: Sequence[str], fractions: Sequence[float], seed: int
                  ) -> dict[str, str]:
    """group key -> split, from a seeded shuffle of the sorted keys."""
    keys = sorted(set(group_keys))
    order = np.random.default_rng([seed, 0x5EED]).permutation(len(keys))
    counts = split_counts(len(keys), fractions)
    assignment, position = {}, 0
    for split in SPLITS:
        for i in order[position:position + counts[split]]:
            assignment[keys[i]] = split
        position += counts[split]
    return assignment


def with_label_offsets(units: list[Unit]) -> list[Unit]:
    """Alternate `label_offset` across the units of each split (in series-key order)."""
    out, seen = [], {s: 0 for s in SPLITS}
    for unit in sorted(units, key=lambda u: (u.split, u.series_key)):
        out.append(dataclasses.replace(unit, label_offset=seen[unit.split] % 2))
        seen[unit.split] += 1
    return out


def synthetic_units(config: Config) -> list[Unit]:
    """One unit per phantom; each phantom is its own patient."""
    data = config.data
    keys = [f"syn-{data.seed}-{i:05d}" for i in range(data.n_series)]
    splits = assign_splits(keys, data.split_fractions, data.seed)
    return with_label_offsets([
        Unit(splits[key], "synthetic", key, key, 0, series_index=i,
             n_slices=data.slices_per_series)
        for i, key in enumerate(keys)])


def dicom_units(index, source: str, seed: int, fractions: Sequence[float]) -> list[Unit]:
    """Units from a `dicom.SeriesIndex`: one per series ("dicom") or per patient ("paired-dicom").

    Split groups are patients. Series without a PatientID are their own group for "dicom"; for
    "paired-dicom" they are grouped by patient folder, as `dicom.find_dose_pairs` pairs them.
    """
    groups: dict[str, list] = {}
    for series in index.groups:
        if source == "paired-dicom":
            key = patient_group_key(series.patient_key, series.files)
        else:
            key = series.patient_key or series.series_key
        groups.setdefault(key, []).append(series)
    splits = assign_splits(list(groups), fractions, seed)
    units = []
    for group_key, members in groups.items():
        if source == "paired-dicom":
            files = tuple(sorted(f for m in members for f in m.files))
            first = min(m.series_key for m in members)
            units.append(Unit(splits[group_key], source, group_key, first, 0, files=files,
                              root=index.root))
        else:
            units.extend(Unit(splits[group_key], source, group_key, m.series_key, 0,
                              files=m.files, root=index.root) for m in members)
    return with_label_offsets(units)


def expected_slices(units: Sequence[Unit]) -> int:
    """Slices the units will yield, about (DICOM: one per file; a pair has two files a slice)."""
    per_unit = {"synthetic": lambda u: u.n_slices, "dicom": lambda u: len(u.files),
                "paired-dicom": lambda u: len(u.files) // 2}
    return sum(per_unit[u.source](u) for u in units)


def expected_examples(units: Sequence[Unit], pairs_per_slice: int = 1,
                      train_variants: int = 0) -> int:
    """Examples the units will yield, about: each test slice gives ``pairs_per_slice`` matched
    twin pairs (`[lesion_test]`), two examples each; each train slice 1 + ``train_variants``
    (`[lesion_variants]`)."""
    per_slice = {"test": 2 * pairs_per_slice, "train": 1 + train_variants}
    return sum(expected_slices([u]) * per_slice.get(u.split, 1) for u in units)


def describe(units: Sequence[Unit]) -> dict[str, int]:
    """Units per split."""
    return {s: sum(1 for u in units if u.split == s) for s in SPLITS}
