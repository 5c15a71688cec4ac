"""What a test tree does when a host tool it needs (Krita, Xvfb, the bpy module) is missing.

In CI (``CI`` set, as every CI service sets it) a tree that cannot run FAILS: a CI image that
lost Krita must not pass by skipping every Krita test. On a developer's machine it skips,
saying what is missing and how to install it. Imports nothing but pytest: the Blender tests
import this from an environment without sfumato.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def in_ci() -> bool:
    """``CI`` is set to anything but an explicit no (GitHub, GitLab and others set ``true``)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def missing(what: str, install: str, *, module_level: bool = False) -> NoReturn:
    """Fail (in CI) or skip (elsewhere) because ``what`` is missing; ``install`` says how to
    get it. ``module_level``: called while a module or conftest is imported."""
    text = f"{what}; {install}"
    if in_ci():
        pytest.fail(f"{text} (CI is set: a missing host tool fails the run)", pytrace=False)
    pytest.skip(text, allow_module_level=module_level)
