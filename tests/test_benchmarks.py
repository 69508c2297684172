"""Every script in benchmarks/ runs on the code as it is: each is run at a tiny size and must exit
0 and print one JSON line with the keys it documents.

The scripts run in this process (their ``main(argv)``, imported from the file), so they share the
test session's TensorFlow instead of starting one each; the global state a script sets (logging
levels, the Keras dtype policy) is put back after it. multiworker.py still starts its two worker
processes (a multi-worker strategy needs processes of its own); its one-worker baseline runs here
(``--one-in-process``), and its ``--timeout`` stops the workers.

Smoke runs, not measurements: no timing is compared with anything (rates are only checked to be
finite and positive). Scripts that read a prepared work directory or an export (evaluate,
interval_widths, serving) get a tiny synthetic one (`bench_inputs`): four series of 32x32 slices,
an untrained tiny RED-CNN as the run's fine-tune network, and its SavedModel export.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Inputs:
    workdir: Path
    export: Path


@pytest.fixture(scope="module")
def bench_inputs(tmp_path_factory) -> Inputs:
    """A tiny prepared work directory (test: two series, four lesion twin pairs, the fewest the
    CHO's half splits need), an untrained network as its fine-tune model, and that model's
    export."""
    from records_fixtures import prepare_tiny

    from ldct_tf import export
    from ldct_tf.config import write_resolved
    from ldct_tf.models.denoiser import build_network
    from ldct_tf.workdir import CONFIG_FILE, Workdir

    workdir = tmp_path_factory.mktemp("bench")
    config = prepare_tiny(workdir, ["data.n_series=4", "data.split_fractions=[0.5, 0.0, 0.5]",
                                    "data.image_size=32", "data.pixel_spacing_mm=2.8",
                                    "input.patch_size=16"])
    folder = Workdir(workdir).denoiser("finetune")
    folder.mkdir(parents=True)
    build_network(config.model).save(folder / "model.keras")
    write_resolved(config, folder / CONFIG_FILE)
    target = export.export_model(workdir, "finetune", "ldct_denoiser", None,
                                 workdir / "saved_models")
    return Inputs(workdir, target)


def _workdir_args(inputs: Inputs) -> list[str]:
    return ["--workdir", str(inputs.workdir), "--config", str(inputs.workdir / "config.toml")]


# script -> (tiny arguments, given `bench_inputs` when they need it; keys of its JSON line;
#            keys whose values must be finite and > 0)
CASES = {
    "cam": (lambda _: ["--size", "32", "--batch", "2", "--repeats", "1", "--filters", "4"],
            {"tfkv_maps_per_s", "tape_maps_per_s", "ratio", "tfkv_single_maps_per_s", "size",
             "batch", "normalize", "global_scale", "max_abs_diff"},
            {"tfkv_maps_per_s", "tape_maps_per_s", "ratio", "tfkv_single_maps_per_s",
             "global_scale"}),
    "denoise_series": (lambda _: ["--slices", "2", "--size", "64", "--in-process"],
                       {"seconds", "slices", "size", "slices_per_s", "model"},
                       {"seconds", "slices_per_s"}),
    "evaluate": (lambda inputs: [*_workdir_args(inputs), "--slices", "2", "--bm3d-workers", "1"],
                 {"slices", "ldct_slices_per_s", "gaussian_slices_per_s",
                  "finetune_slices_per_s"},
                 {"ldct_slices_per_s", "gaussian_slices_per_s", "finetune_slices_per_s"}),
    "input_pipeline": (lambda _: ["--slices", "2", "--batches", "2", "--train-steps", "2",
                                  "--filters", "4", "--image-size", "64", "--patch-size", "32",
                                  "--batch-size", "2", "--beam-in-process"],
                       {"cpu_count", "prepare_slices_per_s_1_workers",
                        "prepare_slices_per_s_2_workers", "reader_patches_per_s",
                        "train_patches_per_s", "ratio", "patch_size", "batch_size"},
                       {"prepare_slices_per_s_1_workers", "prepare_slices_per_s_2_workers",
                        "reader_patches_per_s", "train_patches_per_s", "ratio"}),
    "interval_widths": (lambda inputs: [*_workdir_args(inputs), "--resamples", "20"],
                        {"test_slices", "pairs", "units", "psnr_ldct", "contrast_kept_ldct",
                         "cho_auc_ldct", "cho_dprime_ldct", "cho_auc_ndct", "cho_dprime_ndct",
                         "cho_auc_ndct_minus_ldct"},
                        {"test_slices", "pairs", "units"}),
    "multiworker": (lambda _: ["--filters", "4", "--patch", "32", "--batch", "2", "--steps", "1",
                               "--warmup", "1", "--timeout", "120", "--one-in-process"],
                    {"benchmark", "cpu_cores", "filters", "patch", "batch_per_replica", "steps",
                     "one_worker_patches_per_s", "two_workers_patches_per_s", "ratio",
                     "one_worker_step_ms", "two_workers_step_ms"},
                    {"one_worker_patches_per_s", "two_workers_patches_per_s", "ratio",
                     "one_worker_step_ms", "two_workers_step_ms"}),
    "serving": (lambda inputs: ["--model", str(inputs.export), "--size", "32", "--repeats", "1"],
                {"size", "architecture", "gflop_per_slice", "slices_per_s_b1", "slices_per_s_b8",
                 "model_gflop_per_s_b8", "peak_layer", "peak_gflop_per_s", "peak_fraction"},
                {"slices_per_s_b1", "slices_per_s_b8", "peak_fraction"}),
    "train_step": (lambda _: ["--filters", "4", "--patch", "32", "--batch", "2", "--steps", "2",
                              "--repeats", "1"],
                   {"custom_patches_per_s", "plain_patches_per_s", "overhead",
                    "float32_patches_per_s", "mixed_bfloat16_patches_per_s", "filters", "patch",
                    "batch", "device"},
                   {"custom_patches_per_s", "plain_patches_per_s", "overhead",
                    "float32_patches_per_s", "mixed_bfloat16_patches_per_s"}),
}
NEEDS_INPUTS = {"evaluate", "interval_widths", "serving"}


def test_every_benchmark_script_has_a_case():
    assert {p.stem for p in (ROOT / "benchmarks").glob("*.py")} == set(CASES)


@contextlib.contextmanager
def loaded_script(name: str):
    """``benchmarks/<name>.py`` as a module, in ``sys.modules`` for the block (AutoGraph looks a
    traced function's module up there)."""
    path = ROOT / "benchmarks" / f"{name}.py"
    module_name = f"benchmark_script_{name}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(module_name, None)


@pytest.fixture
def restore_globals():
    """Put back what a script changes for the whole process: the logging set-up of
    `ldct_tf.cli.quiet_startup` and the Keras global dtype policy."""
    from ldct_tf.tf_import import import_tensorflow

    import_tensorflow()
    import keras

    root = logging.getLogger()
    names = ("apache_beam", "absl", "tensorflow", "h5py")
    levels = {name: logging.getLogger(name).level for name in names}
    root_level = root.level
    filters = {handler: list(handler.filters) for handler in root.handlers}
    policy = keras.mixed_precision.global_policy()
    yield
    keras.mixed_precision.set_global_policy(policy)
    for handler in root.handlers[:]:
        if handler not in filters:
            root.removeHandler(handler)
    for handler, kept in filters.items():
        handler.filters[:] = kept
    root.setLevel(root_level)
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


def run_benchmark(name: str, args: list[str], capsys) -> tuple[int, str, str]:
    """``benchmarks/<name>.py args`` in this process: (exit code, stdout, stderr)."""
    with loaded_script(name) as script:
        capsys.readouterr()
        try:
            code = script.main(args)
        except SystemExit as exc:  # argparse errors, a script's own one-line errors
            code = exc.code if isinstance(exc.code, int) or exc.code is None else 1
            print(exc.code, file=sys.stderr)
    code = 0 if code is None else code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.usefixtures("restore_globals")
@pytest.mark.parametrize("name", sorted(CASES))
def test_benchmark_runs_and_prints_one_json_line(name, request, capsys):
    make_args, keys, positive = CASES[name]
    inputs = request.getfixturevalue("bench_inputs") if name in NEEDS_INPUTS else None
    code, out, err = run_benchmark(name, make_args(inputs), capsys)
    assert code == 0, err[-3000:]
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1, f"stdout must be one JSON line, got:\n{out[-3000:]}"
    found = json.loads(lines[-1])
    expected = set(keys)
    if name == "evaluate" and importlib.util.find_spec("bm3d") is not None:
        expected.add("bm3d_slices_per_s")  # BM3D is optional (non-commercial licence)
        positive = {*positive, "bm3d_slices_per_s"}
    assert expected <= set(found), f"missing {sorted(expected - set(found))} in {found}"
    for key in positive:
        assert isinstance(found[key], (int, float)) and math.isfinite(found[key]) \
            and found[key] > 0, f"{key} = {found[key]!r}"
    check = globals().get(f"_check_{name}")
    if check:
        check(found)


def _check_cam(found: dict) -> None:
    # the traced tape Grad-CAM is the same computation as tf-keras-vis, scaled the same way
    assert found["normalize"] == "global"
    assert found["max_abs_diff"] < 1e-2


def _check_interval_widths(found: dict) -> None:
    for key in ("psnr_ldct", "contrast_kept_ldct", "cho_auc_ldct", "cho_auc_ndct"):
        entry = found[key]
        assert {"value", "before", "after", "width_before", "width_after"} <= set(entry)
        assert math.isfinite(entry["value"])
    assert found["psnr_ldct"]["width_after"] >= 0


def _check_input_pipeline(found: dict) -> None:
    assert (found["patch_size"], found["batch_size"]) == (32, 2)


def _check_denoise_series(found: dict) -> None:
    # without --model the command denoised with the ready model and said so
    assert (found["slices"], found["size"]) == (2, 64) and "ready model" in found["model"]


def _check_serving(found: dict) -> None:
    assert found["architecture"]["filters"] == 4 and found["size"] == 32
