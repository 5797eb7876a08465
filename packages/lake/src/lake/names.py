"""Validation of everything that may become part of a path: dataset names, ids, checksums."""

from __future__ import annotations

import re

from platform_core import is_valid_id

from .errors import InvalidNameError

__all__ = ["check_dataset_name", "check_sha256", "check_upload_id"]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_SHA = re.compile(r"^[0-9a-f]{64}$")


def check_dataset_name(name: object) -> str:
    """A dataset name is also its SQL table name: a letter or ``_``, then letters, digits, ``_``."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidNameError(
            f"dataset name {name!r} is not allowed: use 1-63 letters, digits or '_', starting "
            "with a letter or '_' (it is also the table name in SQL)"
        )
    return name


def check_upload_id(upload_id: object) -> str:
    if not isinstance(upload_id, str) or not is_valid_id(upload_id):
        raise InvalidNameError(
            f"upload id {upload_id!r} is not valid: use the 26-character id that "
            "starting the upload returned"
        )
    return upload_id


def check_sha256(value: object, what: str = "checksum") -> str:
    if not isinstance(value, str) or not _SHA.match(value):
        raise InvalidNameError(f"{what} {value!r} is not a lowercase hex SHA-256 (64 characters)")
    return value
