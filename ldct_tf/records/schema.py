"""The record format: every `tf.train.Example` key, its type and shape rule, defined here only.

One example per slice. Images are stored as raw little-endian bytes of a fixed dtype (HU as int16;
the activation map as uint8, 0..255 for A in [0, 1]) with their `height` and `width`, which is
compact and decodes with one `tf.io.decode_raw`. Lesion geometry is always present: a lesion-absent
slice carries the "sham" lesion drawn exactly as real ones are, with contrast 0, so patches and
observer ROIs of both classes come from the same kind of place.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ldct_tf.tf_import import import_tensorflow

LDCT = "ldct"
NDCT = "ndct"
MASK = "mask"
LABEL = "label"
HEIGHT = "height"
WIDTH = "width"
PIXEL_SPACING_MM = "pixel_spacing_mm"
DOSE_FRACTION = "dose_fraction"
SERIES_KEY = "series_key"
SLICE_INDEX = "slice_index"
LESION_ROW = "lesion_row"
LESION_COL = "lesion_col"
LESION_RADIUS_PX = "lesion_radius_px"
LESION_CONTRAST_HU = "lesion_contrast_hu"
PAIR_ID = "pair_id"

HU_DTYPE = np.int16
MASK_DTYPE = np.uint8
MASK_SCALE = 255.0  # stored mask = round(A * 255); A = stored / 255


@dataclass(frozen=True)
class Feature:
    """One key: its proto kind ("bytes", "int64", "float"), value count and meaning."""

    kind: str
    length: int
    shape_rule: str
    dtype: str
    description: str


FEATURES: dict[str, Feature] = {
    LDCT: Feature("bytes", 1, "height*width", "int16", "low-dose slice, HU, row-major raw bytes"),
    NDCT: Feature("bytes", 1, "height*width", "int16",
                  "normal-dose slice, HU, row-major raw bytes"),
    LABEL: Feature("int64", 1, "scalar", "int64", "1 lesion present, 0 absent"),
    HEIGHT: Feature("int64", 1, "scalar", "int64", "rows, pixels"),
    WIDTH: Feature("int64", 1, "scalar", "int64", "columns, pixels"),
    PIXEL_SPACING_MM: Feature("float", 2, "[2]", "float32", "row and column spacing, mm"),
    DOSE_FRACTION: Feature("float", 1, "scalar", "float32",
                           "LDCT dose relative to NDCT; NaN: unknown (real paired-dicom scans)"),
    SERIES_KEY: Feature("bytes", 1, "scalar", "string", "anonymous series key (salted hash)"),
    SLICE_INDEX: Feature("int64", 1, "scalar", "int64", "slice position within its series"),
    LESION_ROW: Feature("float", 1, "scalar", "float32", "lesion centre row, pixels"),
    LESION_COL: Feature("float", 1, "scalar", "float32", "lesion centre column, pixels"),
    LESION_RADIUS_PX: Feature("float", 1, "scalar", "float32",
                              "lesion radius (disk) or half FWHM (Gaussian), pixels"),
    LESION_CONTRAST_HU: Feature("float", 1, "scalar", "float32",
                                "lesion contrast, HU; 0 for the sham lesion of an absent slice"),
    PAIR_ID: Feature("int64", 1, "scalar", "int64",
                     "test split: present/absent twins share it; -1 outside matched pairs"),
}

MASK_FEATURE = Feature("bytes", 1, "height*width", "uint8",
                       "activation map A in [0, 1] stored as round(255 * A), row-major raw bytes")


def feature_spec(with_mask: bool = False) -> dict:
    """The `tf.io.parse_single_example` spec for records (with the CAM ``mask`` if asked)."""
    tf = import_tensorflow()

    kinds = {"bytes": tf.string, "int64": tf.int64, "float": tf.float32}
    features = dict(FEATURES, **({MASK: MASK_FEATURE} if with_mask else {}))
    return {key: tf.io.FixedLenFeature([f.length] if f.length > 1 else [], kinds[f.kind])
            for key, f in features.items()}


def schema(with_mask: bool = False) -> dict:
    """JSON-able description of the record keys (written as ``schema.json``)."""
    features = dict(FEATURES, **({MASK: MASK_FEATURE} if with_mask else {}))
    return {key: {"kind": f.kind, "dtype": f.dtype, "shape": f.shape_rule,
                  "description": f.description} for key, f in features.items()}


def make_example(values: dict) -> bytes:
    """Serialize one slice. Image values are NumPy arrays (HU float or int; mask in [0, 1]).

    HU are rounded and clipped to int16; the mask to uint8 via `MASK_SCALE`.
    """
    tf = import_tensorflow()

    def bytes_feature(v):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v]))

    feature = {}
    for key, value in values.items():
        spec = MASK_FEATURE if key == MASK else FEATURES[key]
        if key in (LDCT, NDCT):
            feature[key] = bytes_feature(hu_to_bytes(value))
        elif key == MASK:
            feature[key] = bytes_feature(mask_to_bytes(value))
        elif spec.kind == "bytes":
            feature[key] = bytes_feature(value.encode() if isinstance(value, str) else value)
        elif spec.kind == "int64":
            feature[key] = tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))
        else:
            floats = np.atleast_1d(np.asarray(value, np.float32)).tolist()
            feature[key] = tf.train.Feature(float_list=tf.train.FloatList(value=floats))
    missing = set(FEATURES) - set(feature)
    if missing:
        raise ValueError(f"example is missing keys {sorted(missing)}")
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString(
        deterministic=True)  # map entries in key order: the same example, the same bytes


def parse_values(serialized: bytes) -> dict:
    """The inverse of `make_example`: one serialized slice as NumPy and Python values.

    Images are float32 ``[height, width]`` (HU; the mask as the stored A in [0, 1]), other bytes
    keys bytes, one-value numbers Python int or float, ``pixel_spacing_mm`` a float64 array (mm).
    """
    tf = import_tensorflow()

    feature = tf.train.Example.FromString(serialized).features.feature
    missing = sorted(key for key in FEATURES if key not in feature)
    if missing:
        raise ValueError(f"example is missing keys {missing}")
    shape = (feature[HEIGHT].int64_list.value[0], feature[WIDTH].int64_list.value[0])
    values = {}
    for key, spec in dict(FEATURES, **{MASK: MASK_FEATURE}).items():
        if key not in feature:
            continue
        if key in (LDCT, NDCT):
            values[key] = hu_from_bytes(feature[key].bytes_list.value[0], shape)
        elif key == MASK:
            values[key] = mask_from_bytes(feature[key].bytes_list.value[0], shape)
        elif spec.kind == "bytes":
            values[key] = feature[key].bytes_list.value[0]
        elif spec.kind == "int64":
            values[key] = feature[key].int64_list.value[0]
        elif spec.length > 1:
            values[key] = np.asarray(feature[key].float_list.value, np.float64)
        else:
            values[key] = feature[key].float_list.value[0]
    return values


def hu_to_bytes(hu: np.ndarray) -> bytes:
    info = np.iinfo(HU_DTYPE)
    return np.clip(np.rint(hu), info.min, info.max).astype("<i2").tobytes()


def mask_to_bytes(mask: np.ndarray) -> bytes:
    return np.clip(np.rint(np.asarray(mask) * MASK_SCALE), 0, 255).astype(MASK_DTYPE).tobytes()


def hu_from_bytes(raw: bytes, shape: tuple[int, int]) -> np.ndarray:
    """The inverse of `hu_to_bytes`: float32 HU of ``shape``."""
    return np.frombuffer(raw, "<i2").reshape(shape).astype(np.float32)


def mask_from_bytes(raw: bytes, shape: tuple[int, int]) -> np.ndarray:
    """The inverse of `mask_to_bytes`: the map A in [0, 1] as stored, float32 of ``shape``."""
    return (np.frombuffer(raw, MASK_DTYPE) / MASK_SCALE).reshape(shape).astype(np.float32)
