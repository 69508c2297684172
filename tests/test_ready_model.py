"""The ready model shipped in the package: its files match their checksums, it loads in a fresh
process and denoises; the checksum rules against hashlib."""

import hashlib
import json
import subprocess
import sys

import pytest

from ldct_tf import ready_model
from ldct_tf.errors import LdctError


def test_shipped_model_matches_its_checksums():
    folder = ready_model.verify()
    listed = ready_model.read_checksums()
    assert "saved_model.pb" in listed and any(name.startswith("variables/") for name in listed)
    for name, digest in listed.items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest
    size_mb = sum((folder / name).stat().st_size for name in listed) / 1e6
    assert size_mb < 20  # "a few MB": it ships in the wheel


def test_shipped_model_says_what_it_was_trained_on():
    provenance = json.loads((ready_model.READY_MODEL / "assets" / "provenance.json").read_text())
    ready = provenance["ready_model"]
    assert ready["data"]["source"] == "synthetic" and ready["data"]["dose_fraction"] == 0.25
    assert ready["built_by"].startswith("python -m ldct_tf.ready_model build")
    assert "not for diagnosis" in ready["description"]
    assert provenance["intended_use"].startswith("research use only")


@pytest.mark.slow
def test_shipped_model_loads_and_denoises_in_a_fresh_process():
    script = (
        "import numpy as np\n"
        "from ldct_tf import ready_model\n"
        "from ldct_tf.ct import simulate\n"
        "from ldct_tf.denoise import denoise_hu, load_export\n"
        "serve, provenance = load_export(ready_model.verify())\n"
        "rows, cols = np.mgrid[:128, :128] - 64\n"
        "hu = np.where((rows / 50.0) ** 2 + (cols / 60.0) ** 2 < 1, 40.0, -1000.0)\n"
        "ldct = np.stack([simulate.scan(hu, 1.4, 0.25, k) for k in (1, 2)])\n"
        "out = denoise_hu(serve, ldct, batch=2)\n"
        "roi = (slice(None), slice(44, 84), slice(44, 84))\n"
        "print(*out.shape, ldct[roi].std(), out[roi].std(), out[roi].mean())\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    *shape, ldct_sd, out_sd, mean = result.stdout.split()
    assert [int(n) for n in shape] == [2, 128, 128]
    # Uniform soft tissue scanned at 25 % dose (the model's training domain): most of the noise
    # goes, the level stays.
    assert float(out_sd) < 0.5 * float(ldct_sd)
    assert float(mean) == pytest.approx(40.0, abs=5.0)


def _folder(tmp_path):
    folder = tmp_path / "model"
    (folder / "variables").mkdir(parents=True)
    (folder / "saved_model.pb").write_bytes(b"graph")
    (folder / "variables" / "variables.index").write_bytes(b"index")
    return folder


def test_checksums_are_sha256_of_each_file(tmp_path):
    folder = _folder(tmp_path)
    sums = ready_model.write_checksums(folder, tmp_path / "SHA256SUMS")
    expected = {"saved_model.pb": hashlib.sha256(b"graph").hexdigest(),
                "variables/variables.index": hashlib.sha256(b"index").hexdigest()}
    assert ready_model.read_checksums(sums) == expected
    assert ready_model.verify(folder, sums) == folder


@pytest.mark.parametrize("damage, message", [
    (lambda f: (f / "saved_model.pb").write_bytes(b"other"), "saved_model.pb does not match"),
    (lambda f: (f / "variables" / "variables.index").unlink(), "missing variables/"),
    (lambda f: (f / "extra.bin").write_bytes(b"x"), "do not list \\(extra.bin\\)"),
    (lambda f: (f / "saved_model.pb").unlink(), "no ready model"),
])
def test_a_damaged_model_is_refused_with_the_fix(tmp_path, damage, message):
    folder = _folder(tmp_path)
    sums = ready_model.write_checksums(folder, tmp_path / "SHA256SUMS")
    damage(folder)
    with pytest.raises(LdctError, match=message) as info:
        ready_model.verify(folder, sums)
    assert "ready_model build" in str(info.value)


def test_denoise_without_model_uses_the_ready_model_and_says_so(tmp_path, capsys):
    import shutil

    import pydicom
    from pydicom.data import get_testdata_file

    from ldct_tf import denoise
    from ldct_tf.errors import run_cli

    (tmp_path / "in").mkdir()
    shutil.copy(get_testdata_file("CT_small.dcm"), tmp_path / "in" / "ct.dcm")
    code = run_cli(denoise.main, ["--input", str(tmp_path / "in"),
                                  "--output", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert code == 0
    assert out.splitlines()[0].startswith("denoise: no --model given, using the ready model: ")
    assert str(ready_model.READY_MODEL) in out.splitlines()[0]
    written = list((tmp_path / "out").rglob("*.dcm"))
    assert len(written) == 1
    derived = pydicom.dcmread(written[0])
    assert "DERIVED" in derived.ImageType
    source = pydicom.dcmread(tmp_path / "in" / "ct.dcm")
    assert derived.SOPInstanceUID != source.SOPInstanceUID
