"""Anonymous keys and dose hints: what the reader keeps instead of identity.

Series and patients are known only by salted SHA-256 keys (`anonymous_key`); a dose hint
("full"/"low") is read from a SeriesDescription or folder name (`dose_hint_from_text`) and the
text itself is never stored.
"""

from __future__ import annotations

import hashlib
import re

# Stable but public: anyone can recompute keys made with it. Pass a per-project secret salt for
# real data so that keys cannot be linked back to UIDs or patient IDs by hashing guesses.
DEFAULT_SALT = "ldct_tf/dicom/public-default-salt/v1"


KEY_HEX_CHARS = 16


_FULL_TOKENS = frozenset({"full", "fd", "fulldose"})


_LOW_TOKENS = frozenset({"quarter", "qd", "lowdose", "quarterdose"})


_FULL_BIGRAMS = frozenset({("full", "dose"), ("normal", "dose")})


_LOW_BIGRAMS = frozenset({("low", "dose"), ("quarter", "dose")})


def anonymous_key(value: str, salt: str | None = None) -> str:
    """Salted SHA-256 of `value` (a UID or patient ID), first 16 hex characters.

    The digest is of the UTF-8 bytes of salt + NUL + value. `salt=None` uses DEFAULT_SALT, which
    is stable but public; pass a per-project secret salt for real data.
    """
    salt = checked_salt(salt)
    digest = hashlib.sha256(f"{salt}\x00{value}".encode("utf-8")).hexdigest()
    return digest[:KEY_HEX_CHARS]


def dose_hint_from_text(text: str | None) -> str | None:
    """Return "full", "low" or None from keywords in a description or folder name.

    Full: "full", "FD", "full dose", "normal dose". Low: "low dose", "quarter", "QD". Text with both
    kinds of keyword, or neither, gives None.
    """
    if not text:
        return None
    tokens = re.findall(r"[a-z]+", text.lower())
    bigrams = set(zip(tokens, tokens[1:]))
    full = bool(_FULL_TOKENS & set(tokens) or _FULL_BIGRAMS & bigrams)
    low = bool(_LOW_TOKENS & set(tokens) or _LOW_BIGRAMS & bigrams)
    if full == low:
        return None
    return "full" if full else "low"


def checked_salt(salt: str | None) -> str:
    if salt is None:
        return DEFAULT_SALT
    if not isinstance(salt, str) or not salt:
        # The salt is meant to be secret: name its type, never echo it.
        raise ValueError(f"salt must be a non-empty str or None, got a {type(salt).__name__}")
    return salt
