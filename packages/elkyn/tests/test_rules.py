"""Rules: Firebase's documented semantics, parse errors, and the evaluator's safety."""

from __future__ import annotations

import pytest

from elkyn import ANONYMOUS, InvalidDataError, PermissionDeniedError, Rules, Store


@pytest.fixture
def db() -> Store:
    from platform_core.auth import TokenSigner

    store = Store(memory=True, signer=TokenSigner("k" * 40))
    yield store  # type: ignore[misc]
    store.close()


def tok(db: Store, uid: str, **claims: object) -> str:
    return db.issue_token(uid, **claims)


def test_read_grants_cascade_and_cannot_be_revoked_deeper(db: Store) -> None:
    db.set("/foo", {"bar": {"baz": 1}})
    db.set_rules({"rules": {"foo": {".read": True, ".write": False, "bar": {".read": False}}}})
    t = tok(db, "u")
    assert db.get("/foo/bar", token=t) == {"baz": 1}  # the shallower true wins
    with pytest.raises(PermissionDeniedError):
        db.set("/foo/bar", 2, token=t)


def test_rules_are_not_filters(db: Store) -> None:
    db.set("/records", {"rec1": 1, "rec2": 2})
    db.set_rules({"rules": {"records": {"rec1": {".read": True}, "rec2": {".read": False}}}})
    t = tok(db, "u")
    with pytest.raises(PermissionDeniedError):
        db.get("/records", token=t)
    assert db.get("/records/rec1", token=t) == 1
    with pytest.raises(PermissionDeniedError):
        db.get("/records/rec2", token=t)


def test_default_deny_and_admin_bypass(db: Store) -> None:
    t = tok(db, "u")
    with pytest.raises(PermissionDeniedError):
        db.get("/", token=t)
    db.set("/x", 1)  # no token: admin
    assert db.get("/x") == 1
    assert db.get("/x", token=tok(db, "root", admin=True)) == 1  # admin claim bypasses too


def test_validate_string_length(db: Store) -> None:
    db.set_rules(
        {
            "rules": {
                ".write": True,
                "foo": {".validate": "newData.isString() && newData.val().length < 100"},
            }
        }
    )
    t = tok(db, "u")
    db.set("/foo", "x" * 99, token=t)
    with pytest.raises(PermissionDeniedError):
        db.set("/foo", "x" * 100, token=t)
    with pytest.raises(PermissionDeniedError):
        db.set("/foo", 5, token=t)
    db.delete("/foo", token=t)  # .validate is not evaluated for a deletion
    assert db.get("/foo") is None


def test_validate_runs_on_ancestors_and_inside_new_data_but_does_not_cascade(db: Store) -> None:
    db.set_rules(
        {
            "rules": {
                ".write": True,
                "user": {
                    "$uid": {
                        ".validate": "newData.hasChildren(['name', 'age'])",
                        "age": {".validate": "newData.isNumber()"},
                        "$other": {".validate": "$other === 'name' || $other === 'extra'"},
                    }
                },
                "loose": {".validate": False, "inner": {".validate": True}},
            }
        }
    )
    t = tok(db, "u")
    with pytest.raises(PermissionDeniedError):
        db.set("/user/ann/name", "Ann", token=t)  # the parent would lack 'age'
    db.set("/user/ann", {"name": "Ann", "age": 3}, token=t)
    db.set("/user/ann/name", "Annie", token=t)  # now the parent still validates
    with pytest.raises(PermissionDeniedError):
        db.set("/user/ann/age", "old", token=t)
    with pytest.raises(PermissionDeniedError):
        db.update("/user/ann", {"colour": "red"}, token=t)  # $other catch-all refuses it
    db.update("/user/ann", {"extra": 1}, token=t)
    with pytest.raises(PermissionDeniedError):
        db.set("/loose/inner", 1, token=t)  # the ancestor's false .validate applies


def test_wildcards_bind_strings(db: Store) -> None:
    db.set_rules(
        {
            "rules": {
                "rooms": {
                    "$room_id": {
                        "topic": {".write": "$room_id.contains('public')"},
                        ".read": "$room_id.beginsWith('public') && $room_id.length > 7",
                    }
                }
            }
        }
    )
    t = tok(db, "u")
    db.set("/rooms/public_1/topic", "hi", token=t)
    with pytest.raises(PermissionDeniedError):
        db.set("/rooms/secret/topic", "hi", token=t)
    assert db.get("/rooms/public_1", token=t) == {"topic": "hi"}
    with pytest.raises(PermissionDeniedError):
        db.get("/rooms/public", token=t)  # length 6


def test_root_data_and_new_data_references(db: Store) -> None:
    rules = {
        "rules": {
            "docs": {
                "$id": {
                    ".write": "root.child('allow_writes').val() === true && "
                    "!data.parent().child('readOnly').exists() && "
                    "newData.child('foo').exists()"
                }
            }
        }
    }
    db.set_rules(rules)
    t = tok(db, "u")
    with pytest.raises(PermissionDeniedError):
        db.set("/docs/1", {"foo": 1}, token=t)
    db.set("/allow_writes", True)
    db.set("/docs/1", {"foo": 1}, token=t)
    with pytest.raises(PermissionDeniedError):
        db.set("/docs/2", {"bar": 1}, token=t)
    db.set("/docs/readOnly", True)
    with pytest.raises(PermissionDeniedError):
        db.set("/docs/3", {"foo": 1}, token=t)


def test_auth_variables_now_and_string_methods(db: Store) -> None:
    db.set_rules(
        {
            "rules": {
                "users": {
                    "$uid": {
                        ".read": "auth != null && auth.uid === $uid",
                        ".write": "auth.token.email.endsWith('@example.com') && auth.uid === $uid",
                        "ts": {".validate": "newData.val() <= now"},
                        "code": {".validate": "newData.val().matches(/^[A-Z]{3}$/)"},
                        "nick": {
                            ".validate": "newData.val().toLowerCase().replace('-', '') === 'abc'"
                        },
                    }
                }
            }
        }
    )
    ann = tok(db, "ann", email="ann@example.com")
    evil = tok(db, "ann", email="ann@evil.com")
    db.set("/users/ann/ts", {".sv": "timestamp"}, token=ann)
    with pytest.raises(PermissionDeniedError):
        db.set("/users/ann/ts", 10**15, token=ann)
    with pytest.raises(PermissionDeniedError):
        db.set("/users/ann/ts", 1, token=evil)
    db.set("/users/ann/code", "ABC", token=ann)
    with pytest.raises(PermissionDeniedError):
        db.set("/users/ann/code", "ABCD", token=ann)
    db.set("/users/ann/nick", "A-b-C", token=ann)
    with pytest.raises(PermissionDeniedError):
        db.get("/users/bob", token=ann)
    assert db.get("/users/ann/code", token=ann) == "ABC"


def test_operators_follow_javascript(db: Store) -> None:
    db.set_rules(
        {
            "rules": {
                "n": {".read": "(1 + 2 * 3 === 7) && (7 % 3 === 1) && (-7 % 3 === -1)"},
                "s": {".read": "'a' + 1 === 'a1' && ('x' < 'y') && (true ? 1 : 2) === 1"},
                "strict": {".read": "1 == '1'"},
                "err": {".read": "auth.uid === 'x' || true"},
            }
        }
    )
    t = tok(db, "u")
    assert db.get("/n", token=t) is None
    assert db.get("/s", token=t) is None
    with pytest.raises(PermissionDeniedError):
        db.get("/strict", token=t)  # no type coercion
    with pytest.raises(PermissionDeniedError):
        db.get("/err", caller=ANONYMOUS)  # error -> false, even with ||


@pytest.mark.parametrize(
    ("rules", "fragment"),
    [
        ({"rules": {"a": {".read": "auth.uid === "}}}, "rules/a/.read"),
        ({"rules": {"a": {".read": "__import__('os')"}}}, "unknown variable '__import__'"),
        ({"rules": {"a": {".read": "$nope === 'x'"}}}, "unknown variable $nope"),
        (
            {"rules": {"a": {".write": "data.val() ==="}}},
            "position 15",
        ),  # 1-based: just past the end
        ({"rules": {"$a": {}, "$b": {}}}, "two wildcards"),
        ({"rules": {"a": {".reed": True}}}, "unknown rule"),
        ({"rules": {"a": {".read": 1}}}, "boolean or a string"),
        ({"rules": {"a": {".validate": "x.matches(/(/)"}}}, "rules/a/.validate"),
        ({"nope": {}}, '"rules"'),
    ],
)
def test_bad_rules_are_refused_at_load_with_path_and_position(
    db: Store, rules: object, fragment: str
) -> None:
    before = db.get_rules()
    with pytest.raises(InvalidDataError) as err:
        db.set_rules(rules)
    assert fragment in str(err.value)
    assert db.get_rules() == before


def test_rules_survive_reopen(tmp_path: object) -> None:
    from pathlib import Path

    where = Path(str(tmp_path)) / "db"
    with Store(where) as db:
        db.set_rules({"rules": {"a": {".read": True}}})
    with Store(where) as db:
        assert db.get_rules() == {"rules": {"a": {".read": True}}}
        assert isinstance(db.rules, Rules)


def test_query_based_rules(db: Store) -> None:
    from elkyn import Query

    db.set_rules(
        {
            "rules": {
                "baskets": {
                    ".read": "auth.uid !== null && query.orderByChild === 'owner' "
                    "&& query.equalTo === auth.uid",
                    ".indexOn": "owner",
                },
                "messages": {".read": "query.orderByKey && query.limitToFirst <= 1000"},
            }
        }
    )
    db.set("/baskets", {"b1": {"owner": "ann"}, "b2": {"owner": "bob"}})
    db.set("/messages", {"m1": 1, "m2": 2})
    ann = tok(db, "ann")
    mine = Query("owner", equal_to="ann", has_equal_to=True)
    assert db.get("/baskets", token=ann, query=mine) == {"b1": {"owner": "ann"}}
    with pytest.raises(PermissionDeniedError):
        db.get("/baskets", token=ann)  # no query: query.orderByChild is null
    with pytest.raises(PermissionDeniedError):
        db.get("/baskets", token=ann, query=Query("owner", equal_to="bob", has_equal_to=True))
    assert db.get("/messages", token=ann, query=Query("$key", limit_to_first=100)) == {
        "m1": 1,
        "m2": 2,
    }
    with pytest.raises(PermissionDeniedError):
        db.get("/messages", token=ann, query=Query("$key", limit_to_first=5000))
    with pytest.raises(PermissionDeniedError):
        db.get("/messages", token=ann, query=Query("$key"))  # no limit: null <= 1000 errors
    with pytest.raises(PermissionDeniedError):
        db.watch("/messages", lambda ev: None, token=ann)  # a stream is a read without a query
