"""A refused rules document says where: line and column in the text the admin sent.

The playground's rules editor puts its error marker there, so the position must be the one in
the user's text (comments included), for JSON syntax errors and for rule errors alike.
"""

from __future__ import annotations

import httpx
import pytest

from elkyn import Store
from elkyn.errors import InvalidDataError
from elkyn.rules.locate import line_column, locate_rule

from .conftest import Server

OPEN = '{"rules": {".read": true, ".write": true}}'


def put_rules(server: Server, text: str) -> httpx.Response:
    with server.admin() as c:
        return c.put("/.settings/rules.json", content=text.encode())


def details(resp: httpx.Response) -> dict[str, object]:
    assert resp.status_code == 400, resp.text
    body = resp.json()
    assert isinstance(body["error"], str)
    assert body["error"].startswith("rules: ")
    return body["details"]


def test_json_syntax_error_has_its_line_and_column(server: Server) -> None:
    text = '{\n  "rules": {\n    ".read": true,\n    ".write": tru\n  }\n}'
    d = details(put_rules(server, text))
    assert (d["line"], d["column"]) == (4, 15)


def test_expression_error_points_into_the_rule(server: Server) -> None:
    text = (
        "{\n"
        "  // comments keep every position\n"
        '  "rules": {\n'
        '    "a": {".read": "auth != null &&& true"}\n'
        "  }\n"
        "}"
    )
    d = details(put_rules(server, text))
    assert d["rule"] == "rules/a/.read"
    # the parser refuses the third '&' (offset 15 in the rule): the marker sits on it
    line4 = text.split("\n")[3]
    assert (d["line"], d["column"]) == (4, line4.index("&&&") + 2 + 1)


def test_unknown_variable_is_located(server: Server) -> None:
    text = '{"rules": {"$uid": {\n  ".write": "$user === auth.uid"}}}'
    d = details(put_rules(server, text))
    assert d["rule"] == "rules/$uid/.write"
    assert (d["line"], d["column"]) == (2, text.split("\n")[1].index("$user") + 1)


def test_structural_error_points_at_the_value(server: Server) -> None:
    text = '{"rules": {\n  "a": {\n    ".reed": true}}}'
    d = details(put_rules(server, text))
    assert d["rule"] == "rules/a/.reed"
    assert (d["line"], d["column"]) == (3, text.split("\n")[2].index("true") + 1)


def test_a_good_document_still_installs(server: Server) -> None:
    assert put_rules(server, OPEN).status_code == 200


def test_get_names_the_reserved_keys(server: Server) -> None:
    with server.admin() as c:
        assert c.get("/.settings/rules.json").headers["x-elkyn-reserved"] == ""
    with Store(memory=True) as db:
        db.reserve("jobs", {".read": "auth != null"})
        assert db.reserved == ["jobs"]


def test_rule_error_in_the_store_names_the_rule() -> None:
    with Store(memory=True) as db, pytest.raises(InvalidDataError) as info:
        db.set_rules({"rules": {"a": {".write": "newData.val() >"}}})
    assert info.value.details["rule"] == "rules/a/.write"
    assert isinstance(info.value.details["offset"], int)


def test_escapes_before_the_offset_are_counted() -> None:
    text = '{"rules": {".read": "\\u0041 == (("}}'
    found = locate_rule(text, "rules/.read", 5)
    assert found is not None
    assert found[0] == 1
    column = found[1]
    # decoded "A == ((" : offset 5 is the first "(", after the 6-character escape
    assert text[column - 1] == "("


def test_last_duplicate_key_wins_and_misses_are_none() -> None:
    text = '{"rules": {"a": 1, "a": {".read": "x"}}}'
    assert locate_rule(text, "rules/a/.read") == line_column(text, text.index('"x"'))
    assert locate_rule(text, "rules/b") is None
    assert locate_rule("not json", "rules") is None
