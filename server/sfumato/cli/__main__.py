"""``python -m sfumato.cli …``: the same as the ``sfumato`` command (tests and scripts use it)."""

import sys

from .main import main

sys.exit(main())
