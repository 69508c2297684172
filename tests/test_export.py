"""Export: SavedModel signatures, fresh-process equality with Keras, gRPC PredictRequest."""

import json
import subprocess
import sys
import textwrap

import grpc
import keras
import numpy as np
import pytest
import tensorflow as tf
from lock_fixtures import held_elsewhere
from serving_fixtures import start_server
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from ldct_tf import export, records
from ldct_tf.config import load_config, write_resolved
from ldct_tf.errors import LdctError
from ldct_tf.workdir import CONFIG_FILE


@pytest.fixture(scope="module")
def exported(denoisers_tiny, tmp_path_factory):
    _, workdir = denoisers_tiny
    out = tmp_path_factory.mktemp("saved_models")
    return workdir, out, export.export_model(workdir, "finetune", "ldct_denoiser", None, out)


def _hu_input(rng, shape=(2, 40, 56, 1)):
    return rng.uniform(-1100, 1500, shape).astype(np.float32)


def test_fresh_process_matches_the_keras_model(exported, tmp_path, rng):
    workdir, _, target = exported
    x = _hu_input(rng)
    np.save(tmp_path / "x.npy", x)
    script = textwrap.dedent(f"""
        import numpy as np, tensorflow as tf
        loaded = tf.saved_model.load({str(target)!r})
        x = np.load({str(tmp_path / 'x.npy')!r})
        out = loaded.signatures["serving_default"](ldct_hu=tf.constant(x))["denoised_hu"]
        np.save({str(tmp_path / 'y.npy')!r}, out.numpy())
    """)
    subprocess.run([sys.executable, "-c", script], check=True, capture_output=True)
    network = keras.models.load_model(workdir / "denoiser" / "finetune" / "model.keras")
    normalized = (np.clip(x, -1024, 3072) + 1024) / 4096
    expected = np.asarray(network(normalized)) * 4096 - 1024
    assert np.abs(np.load(tmp_path / "y.npy") - expected).max() < 0.5


def test_saved_model_cli_lists_both_signatures(exported):
    _, _, target = exported
    cli = [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli"]
    shown = subprocess.run(cli + ["show", "--all", "--dir", str(target)], capture_output=True,
                           text=True, check=True).stdout
    default = shown.split("signature_def['serving_default']")[1]
    examples = shown.split("signature_def['serve_examples']")[1].split("signature_def[")[0]
    assert "inputs['ldct_hu']" in default and "dtype: DT_FLOAT" in default
    assert "shape: (-1, -1, -1, 1)" in default and "outputs['denoised_hu']" in default
    assert "inputs['examples']" in examples and "dtype: DT_STRING" in examples


def test_grpc_predict_request_is_answered(exported, rng):
    _, _, target = exported
    server, port = start_server(str(target), "ldct_denoiser")
    try:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(
            grpc.insecure_channel(f"127.0.0.1:{port}"))
        x = _hu_input(rng, (1, 32, 32, 1))
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "ldct_denoiser"
        request.model_spec.signature_name = "serving_default"
        request.inputs["ldct_hu"].CopyFrom(tf.make_tensor_proto(x))
        response = stub.Predict(request, timeout=60)
        answer = tf.make_ndarray(response.outputs["denoised_hu"])
        direct = tf.saved_model.load(str(target)).signatures["serving_default"](
            ldct_hu=tf.constant(x))["denoised_hu"].numpy()
        np.testing.assert_allclose(answer, direct, atol=1e-4)
    finally:
        server.stop(0)


def test_example_signature_scores_records(exported):
    workdir, _, target = exported
    loaded = tf.saved_model.load(str(target))
    files = [str(f) for f in records.shards(workdir / "records", "test")]
    serialized = [r.numpy() for r in tf.data.TFRecordDataset(files).take(2)]
    by_examples = loaded.signatures["serve_examples"](examples=tf.constant(serialized))
    ldct = np.stack([np.frombuffer(tf.train.Example.FromString(s).features.feature["ldct"]
                                   .bytes_list.value[0], "<i2").reshape(64, 64)
                     for s in serialized]).astype(np.float32)[..., None]
    by_hu = loaded.signatures["serving_default"](ldct_hu=tf.constant(ldct))
    np.testing.assert_allclose(by_examples["denoised_hu"], by_hu["denoised_hu"], atol=1e-3)


def test_versions_config_and_provenance(exported):
    workdir, out, target = exported
    assert target.name == "1"
    second = export.export_model(workdir, "pretrain", "ldct_denoiser", None, out)
    assert second.name == "2"
    with pytest.raises(LdctError, match="exists; pass --force"):
        export.export_model(workdir, "pretrain", "ldct_denoiser", 2, out)
    export.export_model(workdir, "pretrain", "ldct_denoiser", 2, out, force=True)
    config = (out / "models.config").read_text()
    assert 'name: "ldct_denoiser"' in config and 'base_path: "/models/ldct_denoiser"' in config
    prov = json.loads((target / "assets" / "provenance.json").read_text())
    assert prov["training"]["dose_fraction"] == 0.25 and prov["phase"] == "finetune"
    assert prov["training"]["architecture"]["arch"] == "redcnn"
    assert prov["packages"]["tensorflow"] == tf.__version__


@pytest.mark.parametrize("source, dose, says, spacing", [
    ("synthetic", 0.1, "simulated at 0.1 of the normal dose", 0.9),
    ("dicom", 0.1, "simulated at 0.1 of the normal dose", None),
    ("paired-dicom", None, "unknown: real low-dose scans", None),
])
def test_provenance_gives_the_training_dose_and_spacing_the_records_hold(tmp_path, source, dose,
                                                                         says, spacing):
    # real pairs were never simulated at the config's dose_fraction: their dose is unknown; DICOM
    # slices keep their own pixel spacing, never the config's (which only the simulation uses)
    config = load_config(None, [f'data.source="{source}"', "data.dose_fraction=0.1",
                                "data.pixel_spacing_mm=0.9"])
    write_resolved(config, tmp_path / CONFIG_FILE)
    training = export.provenance(tmp_path, "finetune", "ldct_denoiser", 1)["training"]
    assert training["dose_fraction"] == dose and training["dose"].startswith(says)
    assert training["pixel_spacing_mm"] == spacing


def test_an_export_store_or_ready_model_held_by_another_run_is_refused_then_built(exported,
                                                                                tmp_path):
    """Two writers never share a model store (the version number, models.config) or the ready
    model folder (the model and its checksums): the second is refused naming the holder."""
    from ldct_tf import ready_model

    workdir, out, _ = exported
    before = sorted(p.name for p in (out / "ldct_denoiser").iterdir())
    with held_elsewhere(out, "python -m ldct_tf.export --out X") as pid:
        with pytest.raises(LdctError, match=rf"{out} is being written by pid {pid} .*"
                                            r"python -m ldct_tf.export --out X.*another --out"):
            export.export_model(workdir, "pretrain", "ldct_denoiser", None, out)
    assert sorted(p.name for p in (out / "ldct_denoiser").iterdir()) == before
    target = tmp_path / "ready" / "ldct_denoiser"
    target.parent.mkdir()
    with held_elsewhere(target.parent, "python -m ldct_tf.ready_model build") as pid:
        with pytest.raises(LdctError, match=rf"is being written by pid {pid} .*build, since "
                                            r"[^)]*\); wait for it to finish$"):
            ready_model.build(workdir, target=target)
        assert not target.exists()
    ready_model.build(workdir, target=target, command="build it")
    assert ready_model.verify(target, target.parent / "SHA256SUMS") == target
    provenance = json.loads((target / "assets" / "provenance.json").read_text())
    assert provenance["ready_model"]["built_by"] == "build it"
    assert sorted(p.name for p in target.parent.iterdir()) == ["SHA256SUMS", "ldct_denoiser"]


def test_missing_model_is_a_clear_error(tmp_path):
    result = subprocess.run([sys.executable, "-m", "ldct_tf.export", "--workdir", str(tmp_path),
                             "--out", str(tmp_path / "sm")], capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "--phase finetune" in result.stderr
