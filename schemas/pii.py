"""PII masking: card numbers, national ids, card numbers hidden in free text.

One implementation, called by the ingest API (before an event is published) and by
the transform (before a record reaches the warehouse). Every function is pure and
idempotent: masking a masked value returns it unchanged.

* Card numbers (PCI DSS v4 requirement 3.4.1: at most the first six and last four
  digits displayed): ``4111 1111 1111 1111`` -> ``411111******1111``; the mask keeps
  the PAN's length.
* National ids: keyed HMAC-SHA256 (key from ``SLUICE_PII_HMAC_KEY``) of the id with
  spaces, dashes, dots and slashes removed and letters upper-cased, so that
  ``123-45-6789`` and ``123456789`` hash alike: ``hmac-sha256:<64 hex digits>``.
  The hash is stable, so the warehouse can still join on it.
* Free text: a run of 13-19 digits (single spaces or dashes between digits allowed)
  that passes the Luhn check is masked in place, separators kept.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from typing import Any, Final

from pydantic import SecretStr

from schemas.exceptions import PiiError

HMAC_PREFIX: Final = "hmac-sha256:"
MASK_CHAR: Final = "*"
PAN_MIN_DIGITS: Final = 12
PAN_MAX_DIGITS: Final = 19
TEXT_PAN_MIN_DIGITS: Final = 13

_MASKED_PAN = re.compile(r"^[0-9]{6}\*{2,9}[0-9]{4}\Z")
_HMAC_VALUE = re.compile(r"^hmac-sha256:[0-9a-f]{64}\Z")
_PAN_SEPARATORS = re.compile(r"[ -]")
_ID_SEPARATORS = re.compile(r"[\s./-]")
# A maximal run of digits with single spaces or dashes between them (possessive: no
# backtracking). Runs touching a mask character are skipped by the caller, so masked
# output is never matched again.
_DIGIT_RUN = re.compile(r"[0-9](?:[ -]?[0-9])*+")
_GROUP = re.compile(r"[0-9]+")

Key = str | bytes | SecretStr


# Luhn doubling of one digit, as a translation table: 5 -> 1 (10 -> 1 + 0), 7 -> 5, ...
_DOUBLED = str.maketrans("0123456789", "0246813579")


def luhn_valid(digits: str) -> bool:
    """True when the ASCII digit string ``digits`` passes the Luhn (mod 10) check."""
    kept = sum(map(int, digits[-1::-2]))
    doubled = sum(map(int, digits[-2::-2].translate(_DOUBLED)))
    return (kept + doubled) % 10 == 0


def is_masked_card_number(value: str) -> bool:
    """True for a masked PAN: six digits, 2-9 ``*``, four digits (12-19 characters)."""
    return bool(_MASKED_PAN.match(value))


def mask_card_number(pan: str) -> str:
    """``first6`` + ``*`` + ``last4`` of a card number (spaces and dashes dropped).

    A masked value is returned unchanged. Raises :class:`PiiError` for a value that
    is neither a masked PAN nor 12-19 digits (the message does not echo it).
    """
    if _MASKED_PAN.match(pan):
        return pan
    digits = _PAN_SEPARATORS.sub("", pan)
    if not (digits.isascii() and digits.isdigit()) or not (
        PAN_MIN_DIGITS <= len(digits) <= PAN_MAX_DIGITS
    ):
        raise PiiError("not a card number: expected 12-19 digits", code="invalid_pan")
    return digits[:6] + MASK_CHAR * (len(digits) - 10) + digits[-4:]


def is_hmac_national_id(value: str) -> bool:
    """True for a hashed national id ``hmac-sha256:<64 lower-case hex digits>``."""
    return bool(_HMAC_VALUE.match(value))


def _key_bytes(key: Key | None) -> bytes:
    if isinstance(key, SecretStr):
        key = key.get_secret_value()
    if isinstance(key, str):
        key = key.encode("utf-8")
    if not key:
        raise PiiError("no HMAC key: set SLUICE_PII_HMAC_KEY", code="pii_key_missing")
    return key


def hmac_national_id(value: str, key: Key | None) -> str:
    """``hmac-sha256:<hex>`` of the normalised national id; hashed values pass unchanged."""
    if _HMAC_VALUE.match(value):
        return value
    normalised = _ID_SEPARATORS.sub("", value).upper()
    digest = hmac.new(_key_bytes(key), normalised.encode("utf-8"), hashlib.sha256).hexdigest()
    return HMAC_PREFIX + digest


def _mask_digits(segment: str) -> str:
    """Mask every digit of ``segment`` but the first six and the last four."""
    digits = _PAN_SEPARATORS.sub("", segment)
    masked = digits[:6] + MASK_CHAR * (len(digits) - 10) + digits[-4:]
    if len(digits) == len(segment):
        return masked
    replacement = iter(masked)
    return "".join(c if c in " -" else next(replacement) for c in segment)


def _mask_run(run: str) -> str:
    digits = _PAN_SEPARATORS.sub("", run)
    if len(digits) < TEXT_PAN_MIN_DIGITS:
        return run
    if len(digits) <= PAN_MAX_DIGITS:
        return _mask_digits(run) if luhn_valid(digits) else run
    # A longer run (for example an order number next to a card number): look for a
    # Luhn-valid card number made of whole digit groups, leftmost and longest first.
    groups = [(m.start(), m.end()) for m in _GROUP.finditer(run)]
    if len(groups) < 2:
        return run  # one long digit string: an identifier, not a card number
    out: list[str] = []
    position = 0
    i = 0
    while i < len(groups):
        best: int | None = None
        total = 0
        for j in range(i, len(groups)):
            total += groups[j][1] - groups[j][0]
            if total > PAN_MAX_DIGITS:
                break
            if total >= TEXT_PAN_MIN_DIGITS:
                candidate = _PAN_SEPARATORS.sub("", run[groups[i][0] : groups[j][1]])
                if luhn_valid(candidate):
                    best = j
        if best is None:
            i += 1
            continue
        start, end = groups[i][0], groups[best][1]
        out.append(run[position:start])
        out.append(_mask_digits(run[start:end]))
        position = end
        i = best + 1
    out.append(run[position:])
    return "".join(out)


def mask_luhn_in_text(text: str) -> str:
    """``text`` with every Luhn-valid 13-19 digit run masked (first six, last four kept)."""
    if len(text) < TEXT_PAN_MIN_DIGITS:
        return text
    parts: list[str] | None = None
    position = 0
    for match in _DIGIT_RUN.finditer(text):
        run = match.group(0)
        if len(run) < TEXT_PAN_MIN_DIGITS:
            continue
        start, end = match.span()
        if text[end : end + 1] == MASK_CHAR or (start and text[start - 1] == MASK_CHAR):
            continue
        masked = _mask_run(run)
        if masked == run:
            continue
        if parts is None:
            parts = []
        parts.append(text[position:start])
        parts.append(masked)
        position = end
    if parts is None:
        return text
    parts.append(text[position:])
    return "".join(parts)


#: Free-text fields scanned for card numbers by :func:`mask_record` (besides metadata).
FREE_TEXT_FIELDS: Final = ("cause_of_loss", "authorization_code", "source")


def mask_record(record: Mapping[str, Any], *, hmac_key: Key | None) -> dict[str, Any]:
    """A copy of an event record with its PII masked (idempotent).

    ``card_number`` is masked, ``claimant_national_id`` hashed with ``hmac_key``,
    and card numbers in ``metadata`` values, ``merchant.name`` and the
    :data:`FREE_TEXT_FIELDS` are masked. Identifiers are left alone. Works on the
    Avro-ready dict and on its JSON form alike.

    Raises:
        PiiError: a national id must be hashed and no key was given, or
            ``card_number`` is not a card number.
    """
    out = dict(record)
    card = out.get("card_number")
    if isinstance(card, str):
        out["card_number"] = mask_card_number(card)
    national_id = out.get("claimant_national_id")
    if isinstance(national_id, str):
        out["claimant_national_id"] = hmac_national_id(national_id, hmac_key)
    for name in FREE_TEXT_FIELDS:
        value = out.get(name)
        if isinstance(value, str):
            out[name] = mask_luhn_in_text(value)
    metadata = out.get("metadata")
    if isinstance(metadata, Mapping):
        out["metadata"] = {
            k: mask_luhn_in_text(v) if isinstance(v, str) else v for k, v in metadata.items()
        }
    merchant = out.get("merchant")
    if isinstance(merchant, Mapping) and isinstance(merchant.get("name"), str):
        out["merchant"] = {**merchant, "name": mask_luhn_in_text(merchant["name"])}
    return out
