"""Host session tests use the server tests' real server processes."""

from ..server.procs import serve  # noqa: F401  (fixture: server processes whose logs are checked)
