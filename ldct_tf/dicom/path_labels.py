"""Paths are identity too: how artifacts name the files under ``--input``.

PACS exports name folders, and sometimes files, after the patient (``SMITH_JOHN_MRN4711/...``).
So every artifact of ``prepare`` and ``denoise`` (``quarantine.json``, log lines, the resolved
``config.toml``) names an input file by a label: `INPUT_LABEL` for the input folder, then each
component of the file's path relative to it, hashed with the run's secret salt (a ``.dcm``-style
extension is kept)::

    /pacs/SMITH_JOHN_MRN4711/CT_0001/IM_0001.dcm  ->  <input>/9c1e52ab07/4d07f3e2c1/b51a9e0d2f.dcm

Files of one folder share a prefix, so a bad folder still shows as one. Whoever holds the input and
the salt maps labels back to paths (`resolve`, ``python -m ldct_tf.dicom.quarantine``);
``--keep-paths`` writes real paths instead, for data that carries no identity in its names.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
from pathlib import Path
from typing import Iterable

INPUT_LABEL = "<input>"
COMPONENT_HEX_CHARS = 10
# Extensions kept in a label: they say what a file is and never who it is about.
KEPT_SUFFIXES = frozenset({".dcm", ".dicom", ".ima", ".img", ".gz", ".zip", ".json", ".txt"})


@dataclasses.dataclass(frozen=True)
class PathLabels:
    """Callable: an input path -> its label (see the module docstring). Picklable, for Beam.

    root: the input folder; salt: the run's secret salt; keep: label nothing (``--keep-paths``);
    name: what stands for ``root`` (`INPUT_LABEL`; ``<output>`` for a tree that mirrors the input).
    """

    root: str
    salt: str
    keep: bool = False
    name: str = INPUT_LABEL

    def __call__(self, path: str | os.PathLike) -> str:
        if self.keep:
            return str(path)
        try:
            rel = Path(os.path.abspath(path)).relative_to(os.path.abspath(self.root))
        except ValueError:  # not under the input: still never written out
            return f"{self.name}/../{component(str(path), self.salt)}"
        return "/".join([self.name, *(component(part, self.salt) for part in rel.parts)])

    def scrub(self, text: str, paths: Iterable[str | os.PathLike] = ()) -> str:
        """``text`` (an error message) with each of ``paths`` (the files it may quote: names can
        hold spaces) and their folders, then anything else that starts with the root, replaced by
        labels."""
        if self.keep:
            return text
        root = Path(os.path.abspath(self.root))
        known: set[str] = set()
        for path in paths:
            for p in (Path(path), *Path(path).parents):
                if Path(os.path.abspath(p)).is_relative_to(root):
                    known.update({str(p), os.path.abspath(p)})
        for path in sorted(known, key=len, reverse=True):
            text = text.replace(path, self(path))
        for root in dict.fromkeys([os.path.abspath(self.root), str(self.root)]):
            text = re.sub(re.escape(root) + r"""(?:/[^\s'",;:)\]]*)?""",
                          lambda m: self(m.group(0)), text)
        return text


def component(name: str, salt: str) -> str:
    """One path component, hashed with ``salt``: the first `COMPONENT_HEX_CHARS` hex characters
    of SHA-256(salt NUL name), plus the name's extension when it is in `KEPT_SUFFIXES`."""
    suffix = Path(name).suffix
    suffix = suffix if suffix.lower() in KEPT_SUFFIXES else ""
    digest = hashlib.sha256(f"{salt}\x00{name}".encode("utf-8")).hexdigest()
    return digest[:COMPONENT_HEX_CHARS] + suffix


def resolve(labels: Iterable[str], root: str | os.PathLike, salt: str) -> dict[str, str]:
    """Label -> real path for every label that names ``root`` or a file or folder under it
    (labels that match nothing, e.g. a file since deleted, are left out)."""
    wanted = set(labels)
    namer = PathLabels(str(root), salt)
    found = {INPUT_LABEL: str(root)} if INPUT_LABEL in wanted else {}
    for folder, dirnames, filenames in os.walk(root):
        for name in (*dirnames, *filenames):
            path = os.path.join(folder, name)
            label = namer(path)
            if label in wanted:
                found[label] = path
    return found
