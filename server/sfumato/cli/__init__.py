"""The ``sfumato`` command line, one module per command family.

``main`` (the parser, exit codes, models, package, demo), ``serve``, ``generate`` with its
conditioning flags (``conditioning``), the studio commands (``studio``: verify, batch,
reproduce) and ``demo`` (the README demo). ``sfumato.cli:main`` is the console entry point;
``python -m sfumato.cli`` runs the same.
"""

from .main import main

__all__ = ["main"]
