"""pydicom's warnings and log records quote the values they complain about, which can identify the
patient: while a file is read they are captured (`captured_pydicom_notices`) and replaced by one
log line on the ``ldct_tf.dicom`` logger that counts them (`log_notices`)."""

from __future__ import annotations

import collections
import contextlib
import logging
import warnings
from typing import Iterator

logger = logging.getLogger("ldct_tf.dicom")

# pydicom's value-validation warnings (PS3.5 6.2 VR rules) start like this.
_NONCONFORMANT_PREFIXES = ("Invalid value", "The value length")


@contextlib.contextmanager
def captured_pydicom_notices(notices: dict[str, list[str]]) -> Iterator[None]:
    """Collect warnings and pydicom log records raised in the block into `notices`, unshown.

    pydicom's warn_and_log quotes the offending value in both; the filters are removed on exit,
    so no logging state outlives the block.
    """

    def drop(record: logging.LogRecord) -> bool:
        notices["logs"].append(record.getMessage())
        return False

    pydicom_loggers = [
        lg
        for name, lg in list(logging.Logger.manager.loggerDict.items())
        if isinstance(lg, logging.Logger) and (name == "pydicom" or name.startswith("pydicom."))
    ]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for lg in pydicom_loggers:
            lg.addFilter(drop)
        try:
            yield
        finally:
            for lg in pydicom_loggers:
                lg.removeFilter(drop)
            notices["warnings"].extend(str(w.message) for w in caught)


def log_notices(path: str, notices: dict[str, list[str]]) -> None:
    """Emit one log line counting the notices of one file, without their text."""
    warned = notices["warnings"]
    # pydicom's warn_and_log both logs and warns the same text: count such a pair once.
    unpaired = collections.Counter(warned)
    log_only = 0
    for message in notices["logs"]:
        if unpaired[message] > 0:
            unpaired[message] -= 1
        else:
            log_only += 1
    nonconformant = sum(1 for m in warned if m.startswith(_NONCONFORMANT_PREFIXES))
    other = len(warned) - nonconformant + log_only
    if nonconformant or other:
        logger.warning(
            "%s: %d non-conformant value(s) and %d other pydicom warning(s) while reading; "
            "values not shown because they can identify the patient",
            path, nonconformant, other,
        )
