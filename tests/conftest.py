"""Test-wide settings (tests never touch the user's cache or settings folders) and the JACK fixtures."""

from __future__ import annotations

import os
import tempfile

_SANDBOX = tempfile.mkdtemp(prefix="shotoku-tests-")
os.environ.setdefault("SHOTOKU_CACHE", os.path.join(_SANDBOX, "cache"))
os.environ.setdefault("SHOTOKU_CONFIG", os.path.join(_SANDBOX, "config"))
os.environ.setdefault("SHOTOKU_DATA", os.path.join(_SANDBOX, "data"))


import pytest  # noqa: E402


@pytest.fixture
def jack_tools() -> None:
    """Fail (or, with ``SHOTOKU_ALLOW_NO_JACK=1``, skip) a test that needs JACK where it is not installed."""
    from tests.engine.jack import require_jack

    require_jack()


@pytest.fixture
def jack(jack_tools: None):
    """A JACK dummy server for the test (its PID); app tests request it before ``make_window`` so the window
    closes first."""
    from tests.engine.jack import jack_server

    with jack_server() as pid:
        yield pid
