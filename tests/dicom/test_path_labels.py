"""Path labels (`ldct_tf.dicom.path_labels`) and the quarantine reader that maps them back."""

import hashlib
import json

from ldct_tf.dicom import quarantine
from ldct_tf.dicom.path_labels import INPUT_LABEL, PathLabels, resolve
from ldct_tf.errors import EXIT_BAD_INPUT, run_cli

NAME = "SMITH JOHN MRN4711"  # PACS folder names hold spaces


def _hashed(part: str, salt: str) -> str:
    return hashlib.sha256(f"{salt}\x00{part}".encode()).hexdigest()[:10]


def test_each_component_is_hashed_with_the_salt_and_the_extension_kept(tmp_path):
    labels = PathLabels(str(tmp_path), "s1")
    path = tmp_path / NAME / "CT.5" / "IM 1.dcm"
    assert labels(path) == "/".join([INPUT_LABEL, _hashed(NAME, "s1"), _hashed("CT.5", "s1"),
                                     _hashed("IM 1.dcm", "s1") + ".dcm"])
    assert labels(tmp_path) == INPUT_LABEL
    assert labels(path) != PathLabels(str(tmp_path), "s2")(path)  # another run, other labels
    assert PathLabels(str(tmp_path), "s1", keep=True)(path) == str(path)
    outside = labels("/elsewhere/SMITH/x.dcm")
    assert "SMITH" not in outside and outside.startswith(INPUT_LABEL + "/../")


def test_scrub_labels_every_quoted_path_even_with_spaces(tmp_path):
    labels = PathLabels(str(tmp_path), "s")
    file = tmp_path / NAME / "IM 1.dcm"
    text = f"[Errno 2] No such file: '{file}'; under {tmp_path}; not /usr/lib"
    scrubbed = labels.scrub(text, [file])
    assert scrubbed == (f"[Errno 2] No such file: '{labels(file)}'; under {INPUT_LABEL}; "
                        "not /usr/lib")
    assert PathLabels(str(tmp_path), "s", keep=True).scrub(text, [file]) == text


def test_resolve_maps_labels_back_and_leaves_unknown_ones_out(tmp_path):
    (tmp_path / NAME).mkdir()
    file = tmp_path / NAME / "IM1.dcm"
    file.write_bytes(b"x")
    labels = PathLabels(str(tmp_path), "s")
    assert resolve([labels(file), labels(tmp_path / NAME), "<input>/0000000000"], tmp_path, "s") \
        == {labels(file): str(file), labels(tmp_path / NAME): str(tmp_path / NAME)}


def test_quarantine_cli_prints_the_real_paths(tmp_path, capsys):
    source, run = tmp_path / "in", tmp_path / "run"
    (source / NAME).mkdir(parents=True)
    bad = source / NAME / "bad.dcm"
    bad.write_bytes(b"x")
    (run / "records").mkdir(parents=True)
    (run / "salt").write_text("abc\n")
    labels = PathLabels(str(source), "abc")
    entries = [{"path": labels(bad), "reason": "not a DICOM file"},
               {"path": f"{labels(source)} (paired series k slice 0)", "reason": "no room"},
               {"path": "synthetic series s slice 1", "reason": "no room"}]
    (run / "records" / "quarantine.json").write_text(json.dumps(entries))
    assert run_cli(quarantine.main, [str(run / "records" / "quarantine.json"), "--input",
                                     str(source)]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == [f"{bad}: not a DICOM file",
                                f"{source} (paired series k slice 0): no room",
                                "synthetic series s slice 1: no room"]
    assert "3 entries, 0 not found" in err


def test_quarantine_cli_without_its_salt_is_one_line(tmp_path, capsys):
    (tmp_path / "q.json").write_text("[]")
    assert run_cli(quarantine.main, [str(tmp_path / "q.json"), "--input", str(tmp_path)]) \
        == EXIT_BAD_INPUT
    assert capsys.readouterr().err.startswith("error: no salt file next to")
