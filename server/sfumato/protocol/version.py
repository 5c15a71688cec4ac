"""Protocol version. Bumped only for incompatible changes; additions travel as capabilities."""

PROTOCOL_VERSION = 1
