"""CT DICOM in and out, keeping geometry and never identity.

- `reader`: walk a tree, check each file (one-line reasons for every skip, never a traceback), read
  stored values into HU with the Modality LUT (`read_ct_series`, `index_series`);
- `series`: the types the reader returns (`CtSeries`, `ReadResult`, `PairedSeries`) and the
  assembly of frames into ordered series;
- `pairing`: full-dose with low-dose series of one scan, by slice position (`find_dose_pairs`);
- `anonymize`: salted keys for series and patients, dose hints from descriptions;
- `path_labels`: how artifacts name input files (salted labels, never patient-named folders), and
  `quarantine`, the command that maps a quarantine list back to real paths;
- `writer`: the derived series `denoise` writes back for the same patient.

References: DICOM PS3.3 C.7.6.2 (Image Plane), C.11.1 (Modality LUT), C.8.15.3 (Enhanced CT),
C.7.6.16 (multi-frame functional groups).

May import: pydicom, numpy, `ldct_tf.config`, `ldct_tf.errors`, `ldct_tf.atomic` (files written
whole), `ldct_tf.workdir` (where a run keeps its salt). Nothing of TensorFlow, records, training
or evaluation.
"""

from ldct_tf.dicom.anonymize import DEFAULT_SALT, anonymous_key, dose_hint_from_text
from ldct_tf.dicom.pairing import blind_noise_sd_hu, find_dose_pairs, pair_series, patient_group_key
from ldct_tf.dicom.reader import (
                                   HU_RANGE,
                                   MAX_SPACING_MM,
                                   MIN_SPACING_MM,
                                   SeriesFiles,
                                   SeriesIndex,
                                   available_decoders,
                                   index_series,
                                   is_symlink_loop,
                                   read_ct_series,
)
from ldct_tf.dicom.series import CtSeries, NoUsableSliceError, PairedSeries, ReadResult

__all__ = ["DEFAULT_SALT", "HU_RANGE", "MAX_SPACING_MM", "MIN_SPACING_MM", "CtSeries",
           "NoUsableSliceError", "PairedSeries", "ReadResult", "SeriesFiles", "SeriesIndex",
           "anonymous_key", "available_decoders", "dose_hint_from_text", "blind_noise_sd_hu",
           "find_dose_pairs", "index_series", "is_symlink_loop", "pair_series",
           "patient_group_key", "read_ct_series"]
