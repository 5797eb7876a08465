"""Validation of everything that may become part of a path or a header: names, ids, checksums.

Every pattern is applied with ``re.fullmatch``: ``re.match`` with ``$`` accepts a trailing
newline, which then reaches file names, SQL and response headers.
"""

from __future__ import annotations

import re

from platform_core import is_valid_id

from .errors import InvalidNameError

__all__ = [
    "check_backup_name",
    "check_dataset_name",
    "check_query_id",
    "check_sha256",
    "check_upload_id",
]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_SHA = re.compile(r"[0-9a-f]{64}")
_BACKUP = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_QUERY_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def check_dataset_name(name: object) -> str:
    """A dataset name is also its SQL table name: a letter or ``_``, then letters, digits, ``_``."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
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


def check_query_id(query_id: object) -> str:
    """A client-chosen query id travels in a header (``x-query-id``) and a URL: no controls."""
    if not isinstance(query_id, str) or not _QUERY_ID.fullmatch(query_id):
        raise InvalidNameError(
            f"query id {query_id!r} is not allowed: use 1-128 letters, digits or '.', '_', ':', "
            "'-' (or leave it out and use the x-query-id the answer carries)"
        )
    return query_id


def check_sha256(value: object, what: str = "checksum") -> str:
    if not isinstance(value, str) or not _SHA.fullmatch(value):
        raise InvalidNameError(f"{what} {value!r} is not a lowercase hex SHA-256 (64 characters)")
    return value


def check_backup_name(name: object) -> str:
    """A backup the node writes is one directory under ``LAKE_BACKUP_DIR``: a plain name, no
    separators, no leading dot, no ``..``."""
    if not isinstance(name, str) or not _BACKUP.fullmatch(name) or ".." in name:
        raise InvalidNameError(
            f"backup target {name!r} is not allowed: give a name (1-128 letters, digits, '.', "
            "'_', '-', starting with a letter or digit, no '..'); the node writes it under "
            "LAKE_BACKUP_DIR"
        )
    return name
