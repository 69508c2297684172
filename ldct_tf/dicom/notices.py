"""pydicom's warnings and log records quote the values they complain about, which can identify the
patient: while a file is read they are captured (`captured_pydicom_notices`) and replaced by one
log line on the ``ldct_tf.dicom`` logger that counts them (`log_notices`).

The same capture keeps what a pixel-data decoder reported (``notices["decoder"]``): a decoding
plugin that raised (pydicom logs it, then tries the next plugin, which may succeed) and a warning
or error logged by openjpeg. The reader turns any of them into a listed skip."""

from __future__ import annotations

import collections
import contextlib
import logging
import re
import warnings
from pathlib import Path
from typing import Iterator

logger = logging.getLogger("ldct_tf.dicom")

# pydicom's value-validation warnings (PS3.5 6.2 VR rules) start like this.
_NONCONFORMANT_PREFIXES = ("Invalid value", "The value length")

# pydicom logs each decoding plugin that raises (`LOGGER.exception`) here, before trying the next.
_PLUGIN_FAILURE_LOGGER = "pydicom.pixels.decoders"
# pylibjpeg-openjpeg routes openjpeg's decode messages to this logger (when it connects them:
# 2.6.0 logs nothing while decoding).
_DECODER_LOGGERS = ("openjpeg.decode",)


@contextlib.contextmanager
def captured_pydicom_notices(notices: dict[str, list[str]]) -> Iterator[None]:
    """Collect warnings and pydicom log records raised in the block into `notices`, unshown.

    pydicom's warn_and_log quotes the offending value in both; the filters are removed on exit,
    so no logging state outlives the block. ``notices["decoder"]`` (created if missing) gets one
    ``"<plugin or logger>: <message>"`` per decoder report (see the module docstring).
    """

    decoder = notices.setdefault("decoder", [])

    def drop(record: logging.LogRecord) -> bool:
        notices["logs"].append(record.getMessage())
        if record.name.startswith(_PLUGIN_FAILURE_LOGGER) and record.exc_info:
            decoder.append(f"{_plugin(record)}: {decoder_message(record.getMessage())}")
        return False

    def keep_decoder_report(record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING:
            decoder.append(f"{record.name}: {decoder_message(record.getMessage())}")
        return False

    pydicom_loggers = [
        lg
        for name, lg in list(logging.Logger.manager.loggerDict.items())
        if isinstance(lg, logging.Logger) and (name == "pydicom" or name.startswith("pydicom."))
    ]
    decoder_loggers = [logging.getLogger(name) for name in _DECODER_LOGGERS]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for lg in pydicom_loggers:
            lg.addFilter(drop)
        for lg in decoder_loggers:
            lg.addFilter(keep_decoder_report)
        try:
            yield
        finally:
            for lg in pydicom_loggers:
                lg.removeFilter(drop)
            for lg in decoder_loggers:
                lg.removeFilter(keep_decoder_report)
            notices["warnings"].extend(str(w.message) for w in caught)


def decoder_message(text: str) -> str:
    """A decoder's message on one line, without object addresses, at most 200 characters."""
    text = re.sub(r" at 0x[0-9a-fA-F]+", "", " ".join(str(text).split()))
    return text if len(text) <= 200 else text[:197] + "..."


def _plugin(record: logging.LogRecord) -> str:
    """The decoding plugin (pydicom's module name, e.g. ``pylibjpeg``) whose exception `record`
    holds, from the innermost frame in ``pydicom/pixels/decoders/``; ``decoder`` if none."""
    tb, name = record.exc_info[2], "decoder"
    while tb is not None:
        path = Path(tb.tb_frame.f_code.co_filename)
        if path.parent.name == "decoders" and path.stem != "base":
            name = path.stem
        tb = tb.tb_next
    return name


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
