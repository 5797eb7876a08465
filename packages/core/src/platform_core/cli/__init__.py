"""The shared pieces of every command line: ``--version``, the error exit, tabular output and
client authentication (which token a call sends; ``platform login``'s saved tokens).

Typer and rich are imported only by programs that use this package, not by ``platform_core``.
Each name is imported on first use: ``app``, ``output``, ``errors`` and ``version`` need Typer and rich
only (a package with its own CLI, such as emsqrt, declares those two); ``credentials`` (the
client's token, ``platform login``) needs the ``platform-core[service]`` extra (httpx, PyJWT).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from platform_core._extras import lazy_core_exports

if TYPE_CHECKING:  # the same names as below, for type checkers and readers
    from .app import new_app
    from .credentials import (
        DEFAULT_URL,
        TOKEN_OPTION,
        config_dir,
        default_url,
        forget_token,
        login,
        normalize_url,
        resolve_token,
        save_token,
        saved_token,
        tokens_file,
    )
    from .errors import EXIT_CODES, exit_code, expected_errors, fail, warn
    from .output import (
        AS_CSV,
        AS_JSON,
        Column,
        OutputFormat,
        output_format,
        print_rows,
        print_table,
        visible,
    )
    from .version import distribution_versions, version_option

__all__ = [
    "AS_CSV",
    "AS_JSON",
    "DEFAULT_URL",
    "EXIT_CODES",
    "TOKEN_OPTION",
    "Column",
    "OutputFormat",
    "config_dir",
    "default_url",
    "distribution_versions",
    "exit_code",
    "expected_errors",
    "fail",
    "forget_token",
    "login",
    "new_app",
    "normalize_url",
    "output_format",
    "print_rows",
    "print_table",
    "resolve_token",
    "save_token",
    "saved_token",
    "tokens_file",
    "version_option",
    "visible",
    "warn",
]

_EXPORTS = {
    **dict.fromkeys(
        [
            "DEFAULT_URL",
            "TOKEN_OPTION",
            "config_dir",
            "default_url",
            "forget_token",
            "login",
            "normalize_url",
            "resolve_token",
            "save_token",
            "saved_token",
            "tokens_file",
        ],
        ".credentials",
    ),
    **dict.fromkeys(["EXIT_CODES", "exit_code", "expected_errors", "fail", "warn"], ".errors"),
    **dict.fromkeys(
        [
            "AS_CSV",
            "AS_JSON",
            "Column",
            "OutputFormat",
            "output_format",
            "print_rows",
            "print_table",
            "visible",
        ],
        ".output",
    ),
    **dict.fromkeys(["distribution_versions", "version_option"], ".version"),
    "new_app": ".app",
}

# a name whose module needs a missing extra is a MissingExtraError naming the install line
__getattr__, __dir__ = lazy_core_exports(__name__, _EXPORTS, ())
