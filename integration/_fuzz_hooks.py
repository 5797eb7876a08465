"""Schemathesis hooks for the gateway fuzzer: mix live names into generated requests.

Random path parameters almost never name a dataset or an upload that exists, so without
help the fuzzer sees 404s and never reaches the code behind them. ``FUZZ_KNOWN`` (JSON, set
by ``test_fuzz_gateway.py``) lists live values: ``{"name": [...], "upload_id": [...],
"sql": [...]}``. Each generated value is kept, or swapped for a live one, a value from a
small fuzzing dictionary (NASTY), or a live one with a nasty ending.
Loaded by ``st run`` through ``SCHEMATHESIS_HOOKS=_fuzz_hooks``.
"""

from __future__ import annotations

import json
import os
from typing import Any

import schemathesis
from hypothesis import strategies as st

KNOWN: dict[str, list[Any]] = json.loads(os.environ.get("FUZZ_KNOWN", "{}"))
# A fuzzing dictionary: text that breaks headers, paths, encodings and names. Random text
# rarely holds these in the few hundred requests an operation gets in a bounded run.
NASTY = [
    "",
    " ",
    "x\n",
    "a\r\nb",
    "a\x00b",
    "\t",
    "\u077c",
    "\U0001f642",
    "é",
    "../x",
    "%00",
    "%ff",
    "a/b",
    "a.b",
    "'",
    '"',
    ";",
    "x" * 5000,
]
# A lone surrogate can travel only inside JSON (as an escape), never in a URL; an empty path
# parameter is another URL (`/datasets/` redirects to the list), not a bad value.
NASTY_JSON = [*NASTY, "\ud800", "x\udfff"]
NASTY_PATH = [s for s in NASTY if s]


def _vary(key: str, generated: Any, nasty: list[str]) -> st.SearchStrategy[Any]:
    """The generated value, a live one, a nasty one, or a live one with a nasty ending."""
    options = [st.just(generated)]
    live = KNOWN.get(key)
    if live:
        options.append(st.sampled_from(live))
        if key == "sql":
            # Generated SQL nearly always fails to parse, which hides every other field of
            # the body behind a 400: mostly send live SQL, so the other fields get tried.
            options.append(st.sampled_from(live))
        else:
            options.append(st.tuples(st.sampled_from(live), st.sampled_from(nasty)).map("".join))
    if isinstance(generated, str) and key != "sql":
        options.append(st.sampled_from(nasty))
    return st.one_of(options)


def _each(values: dict[str, Any] | None, nasty: list[str] = NASTY) -> st.SearchStrategy[Any]:
    if not isinstance(values, dict) or not values:
        return st.just(values)
    return st.fixed_dictionaries({k: _vary(k, v, nasty) for k, v in values.items()})


@schemathesis.hook
def flatmap_path_parameters(
    context: schemathesis.HookContext, path_parameters: dict[str, Any] | None
) -> st.SearchStrategy[Any]:
    return _each(path_parameters, NASTY_PATH)


@schemathesis.hook
def flatmap_query(
    context: schemathesis.HookContext, query: dict[str, Any] | None
) -> st.SearchStrategy[Any]:
    return _each(query)


@schemathesis.hook
def flatmap_body(context: schemathesis.HookContext, body: Any) -> st.SearchStrategy[Any]:
    return _each(body, NASTY_JSON)
