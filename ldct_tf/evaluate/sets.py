"""The image sets an evaluation compares: the test slices (`Slices`, read once), LDCT and NDCT, the
Gaussian and BM3D baselines (tuned on val) and every trained network of the work directory in its
inference form (`denoise`); a missing set is listed with the reason."""

from __future__ import annotations

import itertools
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ldct_tf import progress as timing
from ldct_tf.config import Config
from ldct_tf.evaluate import baselines
from ldct_tf.evaluate.display import NETWORKS
from ldct_tf.models.inference import load_for_inference
from ldct_tf.models.preprocessing import denormalize_hu, normalize_hu
from ldct_tf.records import denoiser_input, reader
from ldct_tf.records import schema as F
from ldct_tf.workdir import Workdir


@dataclass
class Slices:
    """The test (or val) split in HU, with lesion geometry, in file order."""

    ldct: list = field(default_factory=list)
    ndct: list = field(default_factory=list)
    label: list = field(default_factory=list)
    lesion: list = field(default_factory=list)  # (row, col, radius_px, contrast_hu)
    pair_id: list = field(default_factory=list)
    spacing_mm: list = field(default_factory=list)
    unit: list = field(default_factory=list)  # the source slice: the bootstrap's unit


def load_slices(pattern: str, config: Config) -> Slices:
    out = Slices()
    with reader.naming_corrupt_shards(pattern):
        for item in denoiser_input.make_dataset(pattern, config, False):
            out.ldct.append(denormalize_hu(item[F.LDCT].numpy()[..., 0]))
            out.ndct.append(denormalize_hu(item[F.NDCT].numpy()[..., 0]))
            out.label.append(int(item[F.LABEL]))
            out.lesion.append(tuple(float(item[k]) for k in (
                F.LESION_ROW, F.LESION_COL, F.LESION_RADIUS_PX, F.LESION_CONTRAST_HU)))
            out.pair_id.append(int(item[F.PAIR_ID]))
            out.spacing_mm.append(float(np.mean(item[F.PIXEL_SPACING_MM].numpy())))
            out.unit.append(f"{item[F.SERIES_KEY].numpy().decode()}/{int(item[F.SLICE_INDEX])}")
    return out


def denoise(network, images: list[np.ndarray], batch: int = 4) -> list[np.ndarray]:
    """HU in, HU out, through the shared normalisation; batches of consecutive same-size slices."""
    out = []
    for _, group in itertools.groupby(images, key=np.shape):
        group = list(group)
        for i in range(0, len(group), batch):
            chunk = np.stack(group[i:i + batch])[..., None]
            # a direct call, not predict: slices and patches differ in shape, and predict would
            # re-trace its tf.function for every new shape
            out += list(denormalize_hu(np.asarray(network(normalize_hu(chunk), training=False)))
                        [..., 0])
    return out


def make_sets(config: Config, workdir: Path, test: Slices, val: Slices | None
              ) -> tuple[dict, dict, dict]:
    """(images per set, skipped set -> reason, baseline settings)."""
    sets = {"ldct": test.ldct, "ndct": test.ndct}
    skipped, settings = {}, {}
    if config.evaluate.baselines:
        with timing.phase("baselines"):
            sets.update(_baselines(config, test, val, skipped, settings))
    else:
        for name in ("gaussian", "bm3d"):
            # they do not depend on the training seed: a seed study measures them once
            skipped[name] = "disabled (evaluate.baselines = false)"
    with timing.phase("denoise"):
        networks, missing = trained_networks(workdir)
        skipped.update(missing)
        for name, network in networks.items():
            sets[name] = denoise(network, test.ldct)
            progress(f"{name}: denoised {len(test.ldct)} slices")
    return sets, skipped, settings


def trained_networks(workdir: Path) -> tuple[dict, dict]:
    """The run's trained networks (`display.NETWORKS`) for inference, and name -> why missing."""
    networks, skipped = {}, {}
    for name in NETWORKS:
        path = Workdir(workdir).denoiser_model(name)
        if path.is_file():
            networks[name] = load_for_inference(path)
        else:
            skipped[name] = f"no model at {path}"
    return networks, skipped


def _baselines(config: Config, test: Slices, val: Slices | None, skipped: dict, settings: dict
               ) -> dict:
    """The Gaussian filter and BM3D, tuned on val; fills ``skipped`` and ``settings``."""
    sets = {}
    tune = val if val is not None and val.ldct else test
    if tune is test:
        settings["note"] = "val split empty: baselines tuned on test"
    sigma, scores, note = baselines.tune_gaussian(tune.ldct, tune.ndct,
                                                  config.evaluate.gaussian_sigmas_px)
    sets["gaussian"] = baselines.gaussian(test.ldct, sigma)
    settings["gaussian"] = {"sigma_px": sigma, "val_rmse_abdomen_by_sigma": scores}
    if note:
        settings["gaussian"]["note"] = note
        progress(note)
    progress(f"gaussian filter: sigma {sigma} px (best val RMSE)")
    why = baselines.bm3d_available() if config.evaluate.bm3d else "disabled (evaluate.bm3d)"
    if why is None:
        # FBP noise is correlated: BM3D gets the LDCT noise's power spectrum, not a white sigma
        psd = baselines.paired_noise_psd(tune.ldct, tune.ndct)
        started = time.time()
        sets["bm3d"] = baselines.bm3d(test.ldct, psd)
        settings["bm3d"] = {"noise": "power spectrum of LDCT - NDCT on val (NDCT share removed)",
                            "sigma_hu_equivalent": round(baselines.psd_sd_hu(psd), 2)}
        progress(f"bm3d: noise power spectrum (white-equivalent sigma "
                  f"{baselines.psd_sd_hu(psd):.1f} HU), {len(test.ldct)} slices in "
                  f"{time.time() - started:.0f} s")
    else:
        skipped["bm3d"] = why
    return sets


def progress(message: str) -> None:
    print(f"evaluate: {message}", file=sys.stderr, flush=True)
