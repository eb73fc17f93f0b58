"""Test-wide settings: tests never touch the user's cache or settings folders."""

from __future__ import annotations

import os
import tempfile

_SANDBOX = tempfile.mkdtemp(prefix="shotoku-tests-")
os.environ.setdefault("SHOTOKU_CACHE", os.path.join(_SANDBOX, "cache"))
os.environ.setdefault("SHOTOKU_CONFIG", os.path.join(_SANDBOX, "config"))
