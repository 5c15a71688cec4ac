"""Limits are part of the protocol: the server announces them in ``welcome`` and the codec
enforces them, so that every transport rejects the same input with the same error."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from .errors import ErrorCode, ProtocolError

MIB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    max_message_bytes: int = 256 * MIB
    max_image_side: int = 4096
    max_queued_jobs: int = 8  # per identity (token + client_id), queued plus running
    max_variants: int = 16
    max_steps: int = 150
    max_prompt_chars: int = 4000

    def to_wire(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_wire(cls, data: Any) -> Limits:
        """Read limits announced by a server; unknown keys are ignored (newer servers), known
        ones must be non-negative integers."""
        if not isinstance(data, dict):
            raise ProtocolError(
                ErrorCode.BAD_FIELD,
                f"limits must be a map, got {type(data).__name__}",
                field="limits",
            )
        values: dict[str, int] = {}
        for f in fields(cls):
            value = data.get(f.name)
            if value is None:
                continue
            if type(value) is not int or value < 0:
                raise ProtocolError(
                    ErrorCode.BAD_FIELD,
                    f"limits.{f.name} must be a non-negative integer, got {value!r}"[:300],
                    field=f"limits.{f.name}",
                )
            values[f.name] = value
        return cls(**values)
