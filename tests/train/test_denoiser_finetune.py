"""The fine-tune that is the method: the map reaches the loss once, the control differs from it only
in the weight, the oracle weight is the lesion disk, "pairs" multiplies both images by A, and the
fine-tune starts from the pretrain network. Each would fail on a broken method."""

import dataclasses
import shutil

import keras
import numpy as np
import pytest

from ldct_tf import records
from ldct_tf.config import ModelConfig
from ldct_tf.models import losses
from ldct_tf.models.denoiser import Denoiser, build_network
from ldct_tf.records import denoiser_input
from ldct_tf.records import schema as F
from ldct_tf.train.denoiser import _train_data, load_trained, loss_weights, phase_seed, run
from ldct_tf.workdir import Workdir


def _variant(config, **finetune):
    return config.replace(finetune=dataclasses.replace(config.finetune, **finetune))


def test_boost_and_floor_weights_follow_their_formulas(rng):
    a = rng.random((2, 8, 8, 1)).astype(np.float32)
    settings = {"boost": 30.0, "gamma": 2.0, "floor": 0.2, "threshold": 0.0}
    np.testing.assert_allclose(losses.map_weights(a, form="boost", **settings),
                               1.0 + 30.0 * a ** 2, rtol=1e-5)
    np.testing.assert_allclose(losses.map_weights(a, form="floor", **settings), 0.2 + 0.8 * a,
                               rtol=1e-6)
    with pytest.raises(ValueError, match="boost or floor"):
        losses.map_weights(a, form="linear", **settings)


def test_control_weight_is_uniform_and_a_zero_map_changes_nothing_there(tiny_run):
    config, _ = tiny_run
    a = np.zeros((1, 16, 16, 1), np.float32)
    a[0, 4:8, 4:8, 0] = 0.5
    method = loss_weights(a, _variant(config, weight="map", boost=10.0).finetune).numpy()
    control = loss_weights(a, _variant(config, weight="uniform").finetune).numpy()
    np.testing.assert_array_equal(control, np.ones_like(a))
    outside = a == 0
    np.testing.assert_array_equal(method[outside], control[outside])
    np.testing.assert_allclose(method[~outside], 6.0)


def test_one_step_of_the_method_equals_the_control_where_the_map_is_zero(rng):
    """The map reaches the gradient: a zero map gives the control's update exactly, a map on one
    region gives another."""
    x = rng.random((2, 24, 24, 1)).astype(np.float32) * 0.3
    y = x * 0.8
    network = build_network(ModelConfig(filters=4, depth=3, kernel_size=3))
    network.set_weights([rng.normal(0, 0.05, w.shape).astype(np.float32)
                         for w in network.get_weights()])
    start = network.get_weights()

    def step(weights):
        model = Denoiser(keras.models.clone_model(network), "weighted")
        model.network.set_weights(start)
        model.compile(optimizer=keras.optimizers.SGD(0.1))
        model(x)
        model.train_step((x, y, weights))
        return model.network.get_weights()

    ones = np.ones_like(x)
    region = np.zeros_like(x)
    region[:, 8:14, 8:14] = 1.0
    uniform = step(ones)
    settings = {"form": "boost", "boost": 50.0, "gamma": 1.0, "floor": 0.2, "threshold": 0.0}
    zero_map = step(losses.map_weights(np.zeros_like(x), **settings).numpy())
    lesion_map = step(losses.map_weights(region, **settings).numpy())
    for u, z in zip(uniform, zero_map):
        np.testing.assert_allclose(z, u, rtol=1e-5, atol=1e-7)
    assert any(not np.allclose(u, m, atol=1e-6) for u, m in zip(uniform, lesion_map))


def _first_batches(source, config, phase="finetune", count=2):
    ds = _train_data(source, config, phase, True, config.input.batch_size)
    return [tuple(t.numpy() for t in item) for item in ds.take(count)]


def test_variants_cut_the_same_patches_and_apply_the_weight_once(masked_tiny):
    config, workdir, _ = masked_tiny
    source = Workdir(workdir).records_with_mask
    method = _variant(config, weight="map", boost=20.0, gamma=1.0)
    control = _variant(config, weight="uniform")
    pairs = _variant(config, mode="pairs")
    # the stored map A of the same patches, read without any weighting
    plain = denoiser_input.make_dataset(records.pattern(source, "train"), method, True,
                                        with_mask=True, seed=phase_seed(method, "finetune"),
                                        lesion_fraction=method.finetune.lesion_patch_fraction)
    maps = [tuple(t.numpy() for t in item) for item in plain.take(2)]
    for (x, y, w), (cx, cy, cw), (px, py), (ldct, ndct, a) in zip(
            _first_batches(source, method), _first_batches(source, control),
            _first_batches(source, pairs), maps):
        np.testing.assert_array_equal(x, cx)  # same patches, same order
        np.testing.assert_array_equal(y, cy)
        np.testing.assert_array_equal(x, ldct)
        np.testing.assert_allclose(w, 1.0 + 20.0 * a, rtol=1e-6)  # once: not 1 + 20 (1 + 20 A)
        np.testing.assert_array_equal(cw, np.ones_like(cw))
        np.testing.assert_allclose(px, ldct * a, rtol=1e-6)  # "pairs": both images times A
        np.testing.assert_allclose(py, ndct * a, rtol=1e-6)
    assert any(a.max() > 0 for *_, a in maps)  # the check saw a map, not only zeros


def test_oracle_weight_reaches_the_training_batches(masked_tiny):
    config, workdir, _ = masked_tiny
    source = Workdir(workdir).records_with_mask
    oracle = _variant(config, weight="oracle", lesion_patch_fraction=1.0, boost=1.0)
    batches = _first_batches(source, oracle, count=4)
    # every patch is placed on a (sham) lesion; the present ones get w = 1 + disk, up to 2
    assert any(w.max() > 1.9 for _, _, w in batches)
    assert all(w.min() >= 1.0 and w.max() <= 2.0 + 1e-6 for _, _, w in batches)


def test_oracle_reads_the_record_geometry(masked_tiny):
    config, workdir, _ = masked_tiny
    slices = denoiser_input.make_dataset(records.pattern(Workdir(workdir).records, "val"),
                                         config, False, oracle=True)
    for item in slices:
        mask = item[F.MASK].numpy()[..., 0]
        if int(item[F.LABEL]) == 0:
            assert mask.max() == 0.0
        else:
            peak = np.unravel_index(mask.argmax(), mask.shape)
            assert np.hypot(peak[0] - float(item[F.LESION_ROW]),
                            peak[1] - float(item[F.LESION_COL])) <= float(item[F.LESION_RADIUS_PX])


def test_finetune_starts_from_the_pretrain_network(denoisers_tiny, tmp_path):
    config, workdir = denoisers_tiny
    fresh = tmp_path / "w"
    for name in (Workdir(workdir).records.name, Workdir(workdir).records_with_mask.name):
        shutil.copytree(workdir / name, fresh / name)
    shutil.copytree(workdir / "denoiser" / "pretrain", fresh / "denoiser" / "pretrain")
    # a learning rate too small to move any weight: the result is the pretrain network
    still = _variant(config, learning_rate=1e-12, epochs=1, lr_schedule="constant")
    still = still.replace(train=dataclasses.replace(still.train, image_panels=0))
    run(still, fresh, "finetune")
    pretrained = load_trained(fresh, "pretrain").get_weights()
    tuned = load_trained(fresh, "finetune").get_weights()
    for p, t in zip(pretrained, tuned):
        np.testing.assert_allclose(t, p, atol=1e-6)
    fresh_init = build_network(config.model).get_weights()
    assert any(not np.allclose(f, p) for f, p in zip(fresh_init, pretrained))


def test_every_variant_has_its_own_directory_and_the_runner_pairs_method_with_control():
    from ldct_tf.config import load_config
    from ldct_tf.steps import steps_for

    assert load_config(None, []).finetune.variant == "finetune"
    assert load_config(None, ['finetune.weight="uniform"']).finetune.variant == \
        "finetune_control"
    assert load_config(None, ['finetune.weight="oracle"']).finetune.variant == "finetune_oracle"
    assert load_config(None, ['finetune.mode="pairs"']).finetune.variant == "finetune_pairs"
    names = [s.name for s in steps_for(load_config(None, ["pipeline.oracle=true"]))]
    assert {"finetune", "finetune_control", "finetune_oracle"} <= set(names)
    assert names.index("finetune_control") < names.index("evaluate")



@pytest.mark.parametrize("phase", ["finetune_control", "finetune_oracle"])
def test_train_command_selects_the_variant(masked_tiny, tmp_path, phase):
    from ldct_tf.errors import LdctError
    from ldct_tf.train import phases as train

    _, workdir, _ = masked_tiny
    fresh = tmp_path / "w"
    shutil.copytree(Workdir(workdir).records_with_mask, Workdir(fresh).records_with_mask)
    with pytest.raises(LdctError, match=r"pretrain/model.keras not found.*--phase pretrain"):
        # the phase names the variant even against the config's own mode
        train.main(["--phase", phase, "--workdir", str(fresh), "--config",
                    str(workdir / "config.toml"), "--set", 'finetune.mode="pairs"'])
    written = (fresh / "denoiser" / phase / "config.toml").read_text()
    assert f'weight = "{"uniform" if phase == "finetune_control" else "oracle"}"' in written
