"""The ``[cluster]`` table of the config file (and ``serve --ray [ADDRESS] --replicas N``):
whether the engine runs on replicas of a Ray cluster, which cluster, how many replicas.

Plain data, checked when it is read like the other tables; imports no Ray (plain ``sfumato
serve`` must start without it installed). docs/scaling.md says what each setting does.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ..protocol import SfumatoError


class ClusterConfigError(SfumatoError, ValueError):
    """A ``[cluster]`` setting that cannot work; the message names it and the fix."""


@dataclass(frozen=True)
class ClusterConfig:
    ray: bool = False  # run jobs on engine replicas of a Ray cluster, not in this process
    # "" starts a local Ray cluster; "auto" joins the one `ray start` runs on this machine;
    # "HOST:6379" joins that head node; "ray://HOST:10001" goes through Ray Client.
    address: str = ""
    replicas: int = 0  # 0: one replica per GPU of the cluster (one CPU replica when it has none)
    cpus_per_replica: int = 1  # a CPU replica's cores (and torch threads)
    max_restarts: int = 3  # Ray restarts a dead replica this many times, then it stays down
    namespace: str = "sfumato"  # the Ray namespace the replicas are named in (`ray list actors`)
    connect_timeout: int = 120  # seconds to reach the cluster (ray.init retries for minutes)

    def check(self) -> None:
        """Types and ranges, each error naming the setting and the fix."""
        for f in fields(self):
            value = getattr(self, f.name)
            want = {"bool": bool, "str": str, "int": int}[str(f.type)]
            if type(value) is not want:
                what = {bool: "true or false", str: "a string", int: "an integer"}[want]
                raise ClusterConfigError(
                    f"cluster.{f.name} must be {what}, got {value!r}; see docs/scaling.md"
                )
        for name in ("replicas", "max_restarts"):
            if getattr(self, name) < 0:
                raise ClusterConfigError(
                    f"cluster.{name} must be 0 or more, got {getattr(self, name)}"
                    + ("; 0 runs one replica per GPU" if name == "replicas" else "")
                )
        if self.connect_timeout < 1:
            raise ClusterConfigError(
                f"cluster.connect_timeout must be at least 1 second, got {self.connect_timeout}"
            )
        if self.cpus_per_replica < 1:
            raise ClusterConfigError(
                f"cluster.cpus_per_replica must be at least 1, got {self.cpus_per_replica}"
            )
        if not self.namespace.strip():
            raise ClusterConfigError(
                "cluster.namespace must not be empty; leave it out to use 'sfumato'"
            )
        if "\x00" in self.address or self.address != self.address.strip():
            raise ClusterConfigError(
                f"cluster.address {self.address!r} is not an address; use '' (start a local "
                "cluster), 'auto', 'HOST:6379' or 'ray://HOST:10001'"
            )

    @classmethod
    def from_table(cls, path: Path, table: dict[str, Any]) -> ClusterConfig:
        """The ``[cluster]`` table of config file ``path``; unknown keys are refused by name."""
        known = {f.name for f in fields(cls)}
        for key in table:
            if key not in known:
                raise ClusterConfigError(
                    f"{path}: unknown setting cluster.{key}; known: {', '.join(sorted(known))}"
                )
        config = cls(**table)
        try:
            config.check()
        except ClusterConfigError as exc:
            raise ClusterConfigError(f"{path}: {exc}") from None
        return config
