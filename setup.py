"""The one build step pyproject.toml cannot say: copy the Blender add-on and the Krita plugin
into the wheel as ``sfumato/_plugins/`` so that ``sfumato package`` works from an installed
wheel, not only from a source checkout (sfumato/packaging/__init__.py reads them there)."""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
PLUGINS = ("blender_addon", "krita_plugin")
SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", "vendor", "_vendor")


class BuildWithPlugins(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode:  # an editable install reads the checkout's folders directly
            return
        target = Path(self.build_lib) / "sfumato" / "_plugins"
        for name in PLUGINS:
            if (target / name).exists():
                shutil.rmtree(target / name)
            shutil.copytree(ROOT / name, target / name, ignore=SKIP)


setup(cmdclass={"build_py": BuildWithPlugins})
