"""Hypothesis runs without its per-example deadline here: a deadline is a timed assertion,
and on a loaded CI machine an example that takes 0.2 ms alone took 422 ms (a false failure).
Speed is measured in ``bench/``, not in tests."""

from __future__ import annotations

from hypothesis import settings

settings.register_profile("platform-core", deadline=None)
settings.load_profile("platform-core")
