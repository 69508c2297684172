"""Activation maps: tf-keras-vis against an independent Grad-CAM, scaling, map quality, the
classifier gate, storage, errors."""

import dataclasses
import json
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from classifier_fixtures import separable_set, train_on_separable_set
from cli_fixtures import run_in_process

from ldct_tf import cam, records
from ldct_tf.config import CamConfig, Config
from ldct_tf.errors import LdctError
from ldct_tf.models.classifier import CAM_LAYER, build_classifier
from ldct_tf.records import denoiser_input
from ldct_tf.records import schema as F
from ldct_tf.workdir import Workdir


def _disk_images(n, size=32, seed=0):
    rng = np.random.default_rng(seed)
    rr, cc = np.mgrid[:size, :size]
    images, labels = [], []
    for k in range(n):
        image = 0.26 + rng.normal(0, 0.002, (size, size))
        if k % 2:
            r, c = rng.integers(8, size - 8, 2)
            image += 0.02 * (np.hypot(rr - r, cc - c) < 3)
        images.append(image)
        labels.append(k % 2)
    return np.array(images, np.float32)[..., None], np.array(labels, np.float32)[:, None]


@pytest.fixture(scope="module")
def tiny_classifier():
    keras.utils.set_random_seed(0)
    model = build_classifier(4)
    model.compile(keras.optimizers.Adam(3e-3), "binary_crossentropy")
    x, y = _disk_images(32)
    model.fit(x, y, epochs=15, batch_size=8, verbose=0)
    return model


def _reference_gradcam(model, images):
    """Grad-CAM by hand: ReLU of the gradient-weighted sum of the layer's feature maps (the
    gradient of the pre-sigmoid logit), upsampled bilinearly, min-max normalised."""
    features_model = keras.Model(model.inputs, [model.get_layer(CAM_LAYER).output,
                                                model.get_layer("pool").output])
    head = model.get_layer("lesion_score")
    x = tf.constant(images)
    with tf.GradientTape() as tape:
        features, pooled = features_model(x)
        tape.watch(features)
        logit = tf.matmul(pooled, head.kernel) + head.bias
    grads = tape.gradient(logit, features)
    weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
    raw = tf.nn.relu(tf.reduce_sum(weights * features, axis=-1))[..., None]
    up = tf.image.resize(raw, images.shape[1:3], method="bilinear")[..., 0].numpy()
    low, high = up.min(axis=(1, 2), keepdims=True), up.max(axis=(1, 2), keepdims=True)
    return (up - low) / np.where(high > low, high - low, 1)


def test_tf_keras_vis_map_equals_a_hand_written_gradcam(tiny_classifier):
    images, labels = _disk_images(6, seed=1)
    visualizer = cam.make_visualizer(tiny_classifier, "gradcam")
    maps = cam.activation_maps(visualizer, images, CAM_LAYER, CamConfig(normalize="minmax"))
    reference = _reference_gradcam(tiny_classifier, images)
    assert maps.shape == (6, 32, 32) and np.isfinite(maps).all()
    assert maps.min() >= 0.0 and maps.max() <= 1.0
    for got, want in zip(maps, reference):
        if want.max() > 0:
            assert np.corrcoef(got.ravel(), want.ravel())[0, 1] > 0.99


@pytest.mark.parametrize("method", ["gradcam++", "layercam", "scorecam"])
def test_other_methods_give_maps_in_range(tiny_classifier, method):
    images, _ = _disk_images(2, seed=2)
    visualizer = cam.make_visualizer(tiny_classifier, method)
    maps = cam.activation_maps(visualizer, images, CAM_LAYER,
                               CamConfig(method=method, normalize="max"))
    assert maps.shape == (2, 32, 32) and np.isfinite(maps).all()
    assert 0.0 <= maps.min() and maps.max() <= 1.0


def test_normalize_maps_follows_the_formula(rng):
    maps = rng.random((3, 5, 5)) * 4 + 1
    minmax = cam.normalize_maps(maps, "minmax")
    np.testing.assert_allclose(minmax[0], (maps[0] - maps[0].min()) / np.ptp(maps[0]), rtol=1e-6)
    np.testing.assert_allclose(cam.normalize_maps(maps, "max")[1], maps[1] / maps[1].max(),
                               rtol=1e-6)
    assert (cam.normalize_maps(np.zeros((1, 4, 4)), "minmax") == 0).all()
    np.testing.assert_allclose(cam.normalize_maps(maps, "global", 3.0),
                               np.minimum(maps / 3.0, 1.0), rtol=1e-6)  # one constant for all
    with pytest.raises(ValueError, match="needs a scale"):
        cam.normalize_maps(maps, "global")


def test_global_scale_is_the_99th_percentile_of_the_maxima():
    maxima = np.arange(1.0, 101.0)  # 99th percentile (linear interpolation): 99 + 0.01
    assert cam.global_scale(maxima) == pytest.approx(99.01)
    assert cam.global_scale(np.zeros(5)) == 1.0  # all-zero maps stay zero, no division by 0


def _ring_map():
    """A 21 x 21 map: 2 at the centre pixel (10, 10), 1 on pixel (10, 13), 1 on pixel (0, 0)."""
    mask = np.zeros((21, 21))
    mask[10, 10], mask[10, 13], mask[0, 0] = 2.0, 1.0, 1.0
    return mask


def test_mass_within_by_hand():
    mask = _ring_map()
    # radius 2: 1.5 R = 3 reaches (10, 13) exactly (distance 3); (0, 0) is 14.1 px away
    assert cam.mass_within(mask, 10, 10, 2.0) == pytest.approx(3.0 / 4.0)
    assert cam.mass_within(mask, 10, 10, 1.0) == pytest.approx(2.0 / 4.0)  # 1.5 px: centre only
    assert cam.mass_within(mask, 0, 0, 1.0) == pytest.approx(1.0 / 4.0)
    assert cam.mass_within(np.zeros((5, 5)), 2, 2, 1.0) == 0.0


def test_peak_within_by_hand():
    mask = _ring_map()  # peak at (10, 10)
    assert cam.peak_within(mask, 10, 12, 2.0)  # 2 px away, 1.5 R = 3 px
    assert not cam.peak_within(mask, 10, 12, 1.0)  # 1.5 R = 1.5 px
    assert not cam.peak_within(mask, 0, 0, 5.0)  # (0, 0) holds mass but not the peak
    assert not cam.peak_within(np.zeros((5, 5)), 0, 0, 1.0)  # an all-zero map finds nothing


def test_quality_per_size_and_contrast_bin_by_hand():
    # four hand-made 21x21 maps, one per bin of [5, 9] mm x [20, 40] HU (1 mm pixels, so the
    # radius in pixels is half the diameter in mm): a point of mass 1 at the lesion centre and
    # mass m elsewhere gives mass within 1 / (1 + m) and a peak at the lesion when 1 > m
    quality = []
    for diameter, contrast, away in ((6.0, -25.0, 0.0), (6.0, 35.0, 1.0), (8.0, 22.0, 3.0),
                                     (8.0, -38.0, 0.5)):
        mask = np.zeros((21, 21))
        mask[10, 10], mask[0, 0] = 1.0, away
        g = {"row": 10.0, "col": 10.0, "radius_px": diameter / 2.0, "diameter_mm": diameter,
             "contrast_hu": contrast}
        quality.append(cam._slice_quality(mask, mask, np.zeros((21, 21)), g))
    summary = cam._split_quality(quality, (5.0, 9.0), (20.0, 40.0))
    assert summary["mass_within_1_5R"] == pytest.approx(np.mean([1, 1 / 2, 1 / 4, 1 / 1.5]),
                                                        abs=1e-3)
    bins = {(tuple(b["diameter_mm"]), tuple(b["contrast_hu"])): b for b in summary["bins"]}
    expected = {((5.0, 7.0), (20.0, 30.0)): (1.0, 1.0), ((5.0, 7.0), (30.0, 40.0)): (0.5, 0.0),
                ((7.0, 9.0), (20.0, 30.0)): (0.25, 0.0), ((7.0, 9.0), (30.0, 40.0)): (0.667, 1.0)}
    for key, (mass, peak) in expected.items():
        assert bins[key]["lesion_present_slices"] == 1
        assert bins[key]["mass_within_1_5R"] == pytest.approx(mass, abs=1e-3)
        assert bins[key]["peak_within_1_5R"] == peak  # a tie (m = 1) is not a peak at the lesion


def test_train_bins_span_the_lesion_variants_too():
    config = Config().replace(
        lesion=dataclasses.replace(Config().lesion, diameter_mm=(8.0, 14.0),
                                   contrast_hu=(50.0, 90.0)),
        lesion_variants=dataclasses.replace(Config().lesion_variants, count=1,
                                            diameter_mm=(5.0, 9.0), contrast_hu=(20.0, 40.0)))
    assert cam._lesion_ranges(config, "train") == ((5.0, 14.0), (20.0, 90.0))
    assert cam._lesion_ranges(config, "val") == ((8.0, 14.0), (50.0, 90.0))
    assert cam._lesion_ranges(config, "test") == (config.lesion_test.diameter_mm,
                                                  config.lesion_test.contrast_hu)


@pytest.fixture(scope="module")
def separable_classifier():
    return train_on_separable_set()


def test_map_peaks_inside_an_obvious_lesion(separable_classifier):
    images, _, centres = separable_set(2, size=48, seed=5)
    (row, col), image = centres[1], images[1:2]  # the image with the disk (radius 3)
    visualizer = cam.make_visualizer(separable_classifier, "gradcam")
    mask = cam.activation_maps(visualizer, image, CAM_LAYER, CamConfig(normalize="max"))[0]
    peak = np.unravel_index(np.argmax(mask), mask.shape)
    assert np.hypot(peak[0] - row, peak[1] - col) <= 1.5 * 3


def test_lesion_to_body_ratio_by_formula():
    ndct = np.full((20, 20), 40.0)
    ndct[:, :5] = -1000.0  # air is not body
    mask = np.zeros((20, 20))
    mask[9:12, 9:12] = 1.0
    rr, cc = np.ogrid[:20, :20]
    disc = np.hypot(rr - 10, cc - 10) <= 1.0
    expected = mask[disc].mean() / mask[:, 5:].mean()
    assert cam.lesion_to_body_ratio(mask, ndct, 10, 10, 1.0) == pytest.approx(expected)


def test_records_with_mask_round_trip(masked_tiny):
    config, workdir, summary = masked_tiny
    before = records.pattern(Workdir(workdir).records, "test")
    after = records.pattern(Workdir(workdir).records_with_mask, "test")
    originals = list(denoiser_input.make_dataset(before, config, False))
    masked = list(denoiser_input.make_dataset(after, config, False, with_mask=True))
    assert len(originals) == len(masked) > 0
    for a, b in zip(originals, masked):
        np.testing.assert_array_equal(a[F.LDCT], b[F.LDCT])
        np.testing.assert_array_equal(a[F.NDCT], b[F.NDCT])
        assert b[F.MASK].shape == a[F.NDCT].shape
        m = b[F.MASK].numpy()
        assert 0.0 <= m.min() and m.max() <= 1.0 and m.max() > 0
    saved = json.loads((workdir / "cam" / "summary.json").read_text())
    assert saved["layer"] == CAM_LAYER and saved["method"] == "gradcam"
    assert saved["normalize"] == "global" and saved["global_scale"] > 0
    for split in saved["splits"].values():
        if split["lesion_present_slices"]:
            assert 0.0 <= split["mass_within_1_5R"] <= 1.0
            assert 0.0 <= split["peak_within_1_5R"] <= 1.0
            assert sum(b["lesion_present_slices"] for b in split["bins"]) == \
                split["lesion_present_slices"]
    assert (workdir / "cam" / "figures" / "maps.png").stat().st_size > 1000
    schema = json.loads((Workdir(workdir).records_with_mask / "schema.json").read_text())
    assert F.MASK in schema["features"]


def _metrics(workdir, **values):
    (workdir / "classifier").mkdir(parents=True, exist_ok=True)
    (workdir / "classifier" / "metrics.json").write_text(json.dumps(values))


@pytest.mark.parametrize("values, minimum, used", [
    ({"val_auc_ndct": 0.9, "test_auc_ndct": 0.5}, 0.7, ("val_auc_ndct", 0.9)),
    ({"test_auc_ndct": 0.8}, 0.7, ("test_auc_ndct", 0.8)),  # no val split: test decides
    ({"val_auc_ndct": float("nan"), "test_auc_ndct": 0.8}, 0.7, ("test_auc_ndct", 0.8)),
    ({"val_auc_ndct": 0.55}, 0.0, ("val_auc_ndct", 0.55)),  # 0 disables the gate
])
def test_gate_passes(tmp_path, values, minimum, used):
    _metrics(tmp_path, **values)
    assert cam.check_classifier(tmp_path, minimum) == used


@pytest.mark.parametrize("values, match", [
    ({"val_auc_ndct": 0.55, "test_auc_ndct": 0.9},
     r"classifier val AUC 0.55 \(NDCT patch task\) is below cam.min_classifier_auc 0.7: its maps "
     r"would be noise; .*insert_lesions=true.* --set cam.min_classifier_auc=0"),
    ({"test_auc_ndct": 0.6}, r"classifier test AUC 0.6 .*below"),
    ({"val_auc_ndct": None, "test_auc_ndct": None}, r"no val or test AUC.*--phase classifier"),
    (None, r"metrics.json has no val or test AUC"),
])
def test_gate_refuses_a_classifier_near_chance(tmp_path, values, match):
    if values is not None:
        _metrics(tmp_path, **values)
    with pytest.raises(LdctError, match=match) as caught:
        cam.check_classifier(tmp_path, 0.7)
    assert "\n" not in str(caught.value)


def test_cam_run_stops_at_the_gate(trained_tiny, tmp_path):
    config, workdir, _ = trained_tiny
    # a copy: the fixture's run stays as it is
    for name in (Workdir(workdir).records.name, Workdir(workdir).classifier.name):
        shutil.copytree(workdir / name, tmp_path / name)
    _metrics(tmp_path, val_auc_ndct=0.55, test_auc_ndct=0.6)
    strict = config.replace(cam=dataclasses.replace(config.cam, min_classifier_auc=0.7))
    with pytest.raises(LdctError, match="val AUC 0.55 .* below cam.min_classifier_auc 0.7"):
        cam.run(strict, tmp_path)
    assert not (Workdir(tmp_path).records_with_mask).exists()  # nothing written


def test_cam_run_removes_maps_that_miss_the_lesions(trained_tiny, tmp_path):
    config, workdir, _ = trained_tiny
    for name in (Workdir(workdir).records.name, Workdir(workdir).classifier.name):
        shutil.copytree(workdir / name, tmp_path / name)
    # the tiny classifier is near chance; a minimum of 100 % fails unless every map peaks at its
    # lesion
    strict = config.replace(cam=dataclasses.replace(config.cam, min_peak_within=1.0))
    with pytest.raises(LdctError, match=r"maps peak within 1.5 lesion radii on only \d+% .*"
                                        r"cam.min_peak_within=0") as caught:
        cam.run(strict, tmp_path)
    assert "\n" not in str(caught.value)
    assert not list((Workdir(tmp_path).records_with_mask).glob("*.tfrecord"))
    assert (tmp_path / "cam" / "summary.json").exists()  # kept for inspection


def test_missing_classifier_names_path_and_command(tiny_run, tmp_path):
    config, _ = tiny_run
    with pytest.raises(LdctError, match=r"classifier/model.keras not found.*--phase classifier"):
        cam.load_classifier(tmp_path)
    result = subprocess.run([sys.executable, "-m", "ldct_tf.cam", "--workdir", str(tmp_path)],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "prepare" in result.stderr  # no records yet: the first missing thing is named


@pytest.mark.parametrize("per_split, minimum, raises", [
    ({"train": {"peak_within_1_5R": 0.9}, "val": {"peak_within_1_5R": 0.2}}, 0.3, "val"),
    ({"train": {"peak_within_1_5R": 0.2}, "val": {"peak_within_1_5R": None}}, 0.3, "train"),
    ({"train": {"peak_within_1_5R": 0.1}, "val": {"peak_within_1_5R": 0.3}}, 0.3, None),
    ({"train": {"peak_within_1_5R": 0.0}, "val": {"peak_within_1_5R": 0.0}}, 0.0, None),
])
def test_map_gate_reads_val_then_train(tmp_path, per_split, minimum, raises):
    (tmp_path / "train-00000-of-00001.tfrecord").write_bytes(b"")
    if raises is None:
        cam._check_maps(per_split, minimum, tmp_path)
        assert (tmp_path / "train-00000-of-00001.tfrecord").exists()
    else:
        with pytest.raises(LdctError, match=f"the {raises} maps peak"):
            cam._check_maps(per_split, minimum, tmp_path)
        assert not (tmp_path / "train-00000-of-00001.tfrecord").exists()


@pytest.mark.parametrize("cut", ["mid_record", "record_boundary"])
def test_a_cut_source_shard_is_named_and_no_map_shard_is_written(trained_tiny, tmp_path, cut,
                                                                 capfd, caplog):
    # before: a DataLossError that named no file, and a partial output shard left behind
    config, workdir, _ = trained_tiny
    run = tmp_path / "run"
    run.mkdir()
    for name in ("records", "classifier"):
        shutil.copytree(workdir / name, run / name)
    shard = records.shards(run / "records", "train")[0]
    data_bytes = shard.read_bytes()
    keep = len(data_bytes) // 2 if cut == "mid_record" else 0
    shard.write_bytes(data_bytes[:keep])
    # in this process, as `python -m ldct_tf.cam` calls it (test_missing_classifier_names_path_
    # and_command runs the command itself)
    result = run_in_process(cam.main, ["--workdir", str(run),
                                       "--set", "cam.min_classifier_auc=0.0",
                                       "--set", "cam.min_peak_within=0.0"], capfd, caplog)
    assert result.returncode == 2, result.stderr[-2000:]
    assert shard.name in result.stderr and "Traceback" not in result.stderr
    written = list((Workdir(run).records_with_mask).glob("*")) \
        if (Workdir(run).records_with_mask).exists() else []
    assert not [f for f in written if "tfrecord" in f.name], written
