"""`python -m ldct_tf.dicom.quarantine QUARANTINE.json --input PATH`: the skipped files with real
paths.

``prepare`` and ``denoise`` name input files in ``quarantine.json`` by salted labels
(`ldct_tf.dicom.path_labels`), so the list can be shared without the folder names that name
patients. Whoever holds the input and the run's salt (``<workdir>/salt`` for ``prepare``,
``<output>/salt`` for ``denoise``: found next to the list or one folder up) prints each entry with
its real path here. Nothing is written.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ldct_tf.dicom.path_labels import INPUT_LABEL, resolve
from ldct_tf.errors import LdctError, run_cli
from ldct_tf.workdir import Workdir


def find_salt(quarantine: Path) -> str:
    for folder in (quarantine.parent, quarantine.parent.parent):
        if Workdir(folder).salt.is_file():
            return Workdir(folder).salt.read_text().strip()
    raise LdctError(f"no salt file next to {quarantine} or one folder up; the list must stay in "
                    "its run's work (or output) folder, which holds the salt")


def read_entries(quarantine: Path) -> list[dict]:
    try:
        entries = json.loads(quarantine.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LdctError(f"{quarantine} not found; pass the quarantine.json of a prepare or "
                        "denoise run") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LdctError(f"{quarantine} is not a readable quarantine list ({exc}); pass the "
                        "quarantine.json a run wrote") from None
    if not isinstance(entries, list) or not all(isinstance(e, dict) and "path" in e
                                                for e in entries):
        raise LdctError(f"{quarantine} is not a quarantine list (a JSON list of path/reason "
                        "entries); pass the quarantine.json a run wrote")
    return entries


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ldct_tf.dicom.quarantine",
                                     description="Print a quarantine list with real input paths.")
    parser.add_argument("quarantine", help="quarantine.json of a prepare or denoise run")
    parser.add_argument("--input", required=True, help="the run's input folder")
    args = parser.parse_args(argv)
    quarantine, root = Path(args.quarantine), Path(args.input)
    if not root.is_dir():
        raise LdctError(f"--input {root} is not a folder; pass the folder the run read")
    entries = read_entries(quarantine)
    # a label starts the entry's text; paired-slice entries add a note after it
    heads = {e["path"]: e["path"].split(" ", 1)[0] for e in entries}
    found = resolve(heads.values(), root, find_salt(quarantine))
    unresolved = 0
    for entry in entries:
        head = heads[entry["path"]]
        if not head.startswith(INPUT_LABEL):  # written with --keep-paths, or not a file
            print(f"{entry['path']}: {entry.get('reason', '')}")
            continue
        real = found.get(head)
        unresolved += real is None
        shown = entry["path"].replace(head, real, 1) if real else f"{entry['path']} (not found)"
        print(f"{shown}: {entry.get('reason', '')}")
    print(f"{len(entries)} entries, {unresolved} not found under {root}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
