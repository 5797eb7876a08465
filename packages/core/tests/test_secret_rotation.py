"""Secret rotation: PLATFORM_PREVIOUS_SECRETS verify every kind of token but never sign."""

from __future__ import annotations

import jwt
import pytest

from platform_core import SettingsError, UnauthorizedError, auth, load_settings
from platform_core.auth import TokenSigner

OLD, NEW, OTHER = "o" * 40, "n" * 40, "x" * 40


def test_previous_secrets_verify_user_cluster_and_worker_tokens() -> None:
    old = TokenSigner(OLD)
    rotated = TokenSigner(NEW, [OLD])
    assert rotated.verify(old.issue("ann", admin=True)).admin
    assert rotated.verify_cluster(old.cluster_token("a")).cluster
    assert rotated.verify_worker(old.worker_token("w")).kind == "worker"
    # and the roles still hold across secrets
    with pytest.raises(UnauthorizedError, match="cluster token is only accepted"):
        rotated.verify(old.cluster_token("a"))


def test_the_current_secret_signs() -> None:
    token = TokenSigner(NEW, [OLD]).issue("ann")
    jwt.decode(token, NEW, algorithms=["HS256"])  # signed with NEW, not OLD
    with pytest.raises(UnauthorizedError):
        TokenSigner(OLD).verify(token)


def test_step_a_a_node_still_signing_with_old_accepts_the_new_secret() -> None:
    step_a = TokenSigner(OLD, [NEW])
    assert step_a.verify(TokenSigner(NEW).issue("ann")).sub == "ann"
    assert step_a.verify_cluster(TokenSigner(NEW, [OLD]).cluster_token("b")).cluster


def test_a_removed_secret_is_refused_like_any_bad_token() -> None:
    after = TokenSigner(NEW)
    with pytest.raises(UnauthorizedError) as removed:
        after.verify(TokenSigner(OLD).issue("ann"))
    with pytest.raises(UnauthorizedError) as forged:
        after.verify(TokenSigner(OTHER).issue("ann"))
    assert removed.value.message == forged.value.message
    assert "Signature verification failed" in removed.value.message


def test_expired_token_of_a_previous_secret_says_expired() -> None:
    token = jwt.encode({"sub": "ann", "exp": 1}, OLD, algorithm="HS256")
    with pytest.raises(UnauthorizedError, match="token expired"):
        TokenSigner(NEW, [OLD]).verify(token)


def test_settings_list_and_short_previous_secret() -> None:
    settings = load_settings(secret=NEW, previous_secrets=f" {OLD} , ,{OTHER}")
    assert auth.previous_secrets(settings) == [OLD.encode(), OTHER.encode()]
    assert auth.signer(settings).verify(TokenSigner(OTHER).issue("ann")).sub == "ann"
    with pytest.raises(SettingsError, match=r"previous secret #1 has 5 bytes.*PLATFORM_PREVIOUS"):
        auth.signer(load_settings(secret=NEW, previous_secrets="short"))
    assert auth.previous_secrets(load_settings(secret=NEW, previous_secrets="")) == []
