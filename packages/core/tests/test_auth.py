import os
import stat
import subprocess
import sys
import time

import jwt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from platform_core import BadInputError, SettingsError, UnauthorizedError, load_settings
from platform_core.auth import (
    MAX_TOKEN_TTL_SECONDS,
    TokenSigner,
    bearer_token,
    client_token,
    issue_token,
    load_secret,
    verify_cluster,
    verify_token,
)

SECRET = "s" * 32


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for key in list(os.environ):
        if key.startswith("PLATFORM_"):
            monkeypatch.delenv(key)


def test_round_trip_keeps_fixed_and_extra_claims():
    s = TokenSigner(SECRET)
    claims = s.verify(s.issue("alice", admin=True, ttl_seconds=60, extra={"team": "data"}))
    assert (claims.sub, claims.admin, claims.cluster) == ("alice", True, False)
    assert dict(claims.extra) == {"team": "data"}
    assert time.time() < claims.exp <= time.time() + 61


@given(sub=st.text(min_size=1, max_size=40), admin=st.booleans())
def test_any_subject_round_trips(sub, admin):
    s = TokenSigner(SECRET)
    claims = s.verify(s.issue(sub, admin=admin))
    assert (claims.sub, claims.admin) == (sub, admin)


def test_expired_wrong_key_tampered_and_garbage_tokens_are_refused():
    s = TokenSigner(SECRET)
    past = int(time.time()) - 3600
    expired = jwt.encode({"sub": "a", "admin": False, "exp": past}, SECRET, algorithm="HS256")
    with pytest.raises(UnauthorizedError, match="expired"):
        s.verify(expired)
    with pytest.raises(UnauthorizedError, match="invalid token"):
        TokenSigner("t" * 32).verify(s.issue("a"))
    token = s.issue("a")
    head, _body, sig = token.split(".")
    forged = jwt.encode(
        {"sub": "a", "admin": True, "exp": past + 7200}, "x" * 32, algorithm="HS256"
    )
    with pytest.raises(UnauthorizedError):
        s.verify(f"{head}.{forged.split('.')[1]}.{sig}")
    with pytest.raises(UnauthorizedError):
        s.verify("not-a-token")


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
def test_alg_none_and_other_algorithms_are_refused():
    unsigned = jwt.encode(
        {"sub": "a", "admin": True, "exp": int(time.time()) + 60}, None, algorithm="none"
    )
    with pytest.raises(UnauthorizedError):
        TokenSigner(SECRET).verify(unsigned)
    hs512 = jwt.encode({"sub": "a", "exp": int(time.time()) + 60}, SECRET, algorithm="HS512")
    with pytest.raises(UnauthorizedError):
        TokenSigner(SECRET).verify(hs512)


def test_token_without_exp_is_refused():
    token = jwt.encode({"sub": "a"}, SECRET, algorithm="HS256")
    with pytest.raises(UnauthorizedError, match="exp"):
        TokenSigner(SECRET).verify(token)


def test_cluster_and_user_tokens_are_not_interchangeable():
    s = TokenSigner(SECRET)
    cluster = s.cluster_token("node-a")
    assert s.verify_cluster(cluster).sub == "node-a"
    with pytest.raises(UnauthorizedError, match="node-to-node"):
        s.verify(cluster)
    with pytest.raises(UnauthorizedError, match="needs a cluster token"):
        s.verify_cluster(s.issue("alice", admin=True))


def test_worker_tokens_are_refused_everywhere_else_and_only_they_are_worker_tokens():
    s = TokenSigner(SECRET)
    worker = s.worker_token("tab-1", ttl_seconds=60)
    claims = s.verify_worker(worker)
    assert (claims.sub, claims.kind, claims.admin, claims.cluster) == (
        "tab-1",
        "worker",
        False,
        False,
    )
    with pytest.raises(UnauthorizedError, match="worker token is only accepted"):
        s.verify(worker)
    with pytest.raises(UnauthorizedError, match="needs a cluster token"):
        s.verify_cluster(worker)
    for other in (s.issue("alice"), s.issue("root", admin=True), s.cluster_token("node-a")):
        with pytest.raises(UnauthorizedError, match="needs a worker token"):
            s.verify_worker(other)
    assert s.verify(s.issue("alice")).kind == "user"
    assert s.verify_cluster(s.cluster_token()).kind == "cluster"


def test_a_worker_token_has_a_bounded_lifetime_and_its_kind_cannot_be_forged():
    s = TokenSigner(SECRET)
    with pytest.raises(BadInputError, match="worker token lives"):
        s.worker_token("tab", ttl_seconds=8 * 24 * 3600)
    with pytest.raises(BadInputError, match="worker token lives"):
        s.worker_token("tab", ttl_seconds=0)
    with pytest.raises(BadInputError, match="clash with fixed claims"):
        s.issue("a", extra={"kind": "worker"})
    odd = jwt.encode({"sub": "a", "exp": 2**40, "kind": "robot"}, SECRET, algorithm="HS256")
    with pytest.raises(UnauthorizedError, match="unknown kind"):
        s.verify(odd)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"sub": ""}, "non-empty subject"),
        ({"sub": "a", "extra": {"admin": True}}, "clash with fixed claims"),
        ({"sub": "a", "extra": {"cluster": True}}, "clash with fixed claims"),
        ({"sub": "a", "ttl_seconds": 0}, "lives 1 to 604800 s"),
        ({"sub": "a", "ttl_seconds": 7 * 24 * 3600 + 1}, "lives 1 to 604800 s"),
    ],
)
def test_bad_issue_arguments(kwargs, needle):
    sub = kwargs.pop("sub")
    with pytest.raises(BadInputError, match=needle):
        TokenSigner(SECRET).issue(sub, **kwargs)


def test_short_secret_is_refused_with_advice():
    with pytest.raises(SettingsError, match="at least 32"):
        TokenSigner("short")


def test_secret_from_environment_wins(monkeypatch, tmp_path):
    monkeypatch.setenv("PLATFORM_SECRET", SECRET)
    monkeypatch.setenv("PLATFORM_HOME", str(tmp_path))
    assert load_secret() == SECRET.encode()
    assert not (tmp_path / "secret").exists()
    assert verify_token(issue_token("bob")).sub == "bob"


def test_secret_file_is_created_once_private_and_reused(tmp_path):
    settings = load_settings(home=tmp_path / "home")
    first = load_secret(settings)
    path = tmp_path / "home" / "secret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first) >= 32
    assert load_secret(settings) == first
    token = issue_token("carol", settings=settings)
    assert verify_token(token, settings=settings).sub == "carol"
    assert verify_cluster(TokenSigner(first).cluster_token(), settings=settings).cluster
    assert [p.name for p in path.parent.iterdir()] == ["secret"]  # no temp files left


def test_racing_processes_agree_on_one_secret(tmp_path):
    code = (
        "import sys; from platform_core import load_settings; from platform_core.auth import load_secret;"
        "print(load_secret(load_settings(home=sys.argv[1])).decode())"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True
        )
        for _ in range(6)
    ]
    secrets = {p.communicate(timeout=60)[0].strip() for p in procs}
    assert len(secrets) == 1
    assert secrets == {(tmp_path / "secret").read_text()}


def test_empty_secret_file_is_a_clear_error(tmp_path):
    (tmp_path / "secret").write_text("")
    with pytest.raises(SettingsError, match="is empty; delete it"):
        load_secret(load_settings(home=tmp_path))


def test_client_token_prefers_flag_then_environment(monkeypatch):
    assert client_token(None) is None
    monkeypatch.setenv("PLATFORM_TOKEN", "from-env")
    assert client_token(None) == "from-env"
    assert client_token("from-flag") == "from-flag"


def test_bearer_header_parsing():
    assert bearer_token(None) is None
    assert bearer_token("Bearer abc") == "abc"
    assert bearer_token("bearer  abc ") == "abc"
    for bad in ["Basic abc", "Bearer", "abc"]:
        with pytest.raises(UnauthorizedError):
            bearer_token(bad)


def test_a_token_living_past_the_maximum_is_refused() -> None:
    """No token lives longer than MAX_TOKEN_TTL_SECONDS from its iat (issue 26's break-test:
    a revocation by id is kept that long, so a longer token would outlive it)."""
    now = int(time.time())
    long_lived = jwt.encode(
        {"sub": "a", "admin": False, "iat": now, "exp": now + MAX_TOKEN_TTL_SECONDS + 3600},
        SECRET,
        algorithm="HS256",
    )
    with pytest.raises(UnauthorizedError, match="lives longer than"):
        TokenSigner(SECRET).verify(long_lived)
    ok = TokenSigner(SECRET).issue("a", ttl_seconds=MAX_TOKEN_TTL_SECONDS)
    assert TokenSigner(SECRET).verify(ok).sub == "a"
