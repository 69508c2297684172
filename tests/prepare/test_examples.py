"""Tests for ldct_tf.prepare.examples: the dose each record carries. Simulated sources record the
dose they were simulated at; real paired-dicom scans record it as unknown (NaN), never the
config's `dose_fraction`."""

import math

import numpy as np
import pytest
import tensorflow as tf
from dicom_fixtures import write_mayo_tree
from records_fixtures import TINY, prepare_tiny

from ldct_tf import records
from ldct_tf.config import load_config
from ldct_tf.prepare.examples import unit_examples
from ldct_tf.prepare.pipeline import plan_units
from ldct_tf.records import schema as F
from ldct_tf.workdir import Workdir

DOSE = 0.1  # not the default, so a record cannot match it by chance
SMALL_LESIONS = ["lesion.diameter_mm=[4.0, 6.0]", "lesion_test.diameter_mm=[4.0, 6.0]"]


def _mayo_input(tmp_path):
    """Two patients' full- and quarter-dose series of 64x64 water discs (Mayo/TCIA layout)."""
    root = tmp_path / "input"
    write_mayo_tree(root, ("L001", "L002"), n_slices=2, rows=64, cols=64)
    return root


def _config(source, root=None):
    source_keys = [f'data.source="{source}"'] + ([f'data.input="{root}"'] if root else [])
    return load_config(None, [*TINY, *SMALL_LESIONS, f"data.dose_fraction={DOSE}",
                              "data.n_series=2", *source_keys])


def _recorded_doses(config):
    """The dose of every example the units of ``config`` give (the pure function of prepare)."""
    units, _ = plan_units(config, "test-salt-0")
    doses = [values[F.DOSE_FRACTION] for unit in units
             for kind, _, values in unit_examples(unit, config, "test-salt-0")
             if kind == "example"]
    assert doses, "no example was made"
    return doses


@pytest.mark.parametrize("source", ["synthetic", "dicom"])
def test_simulated_sources_record_the_dose_they_were_simulated_at(tmp_path, source):
    config = _config(source, _mayo_input(tmp_path) if source == "dicom" else None)
    assert config.data.simulated_dose_fraction == DOSE
    assert all(dose == DOSE for dose in _recorded_doses(config))


def test_real_pairs_record_their_dose_as_unknown(tmp_path):
    config = _config("paired-dicom", _mayo_input(tmp_path))
    assert config.data.simulated_dose_fraction is None
    assert all(math.isnan(dose) for dose in _recorded_doses(config))


def test_prepared_paired_dicom_records_say_unknown_not_the_config_dose(tmp_path):
    root = _mayo_input(tmp_path)
    workdir = tmp_path / "run"
    workdir.mkdir()
    (workdir / "salt").write_text("test-salt-0")  # fixed lesion sites: every slice has room
    prepare_tiny(workdir, [*SMALL_LESIONS, f"data.dose_fraction={DOSE}",
                           'data.source="paired-dicom"', f'data.input="{root}"'])
    spec = F.feature_spec()
    doses = [float(tf.io.parse_single_example(record, spec)[F.DOSE_FRACTION])
             for split in ("train", "val", "test")
             for shard in records.shards(Workdir(workdir).records, split)
             for record in tf.data.TFRecordDataset(str(shard))]
    assert doses and np.isnan(doses).all(), doses
