"""One local Ray cluster per test session, and one ``sfumato serve --ray ADDRESS --replicas 2``
front door joined to it: two CPU replicas of the tiny models, one torch thread each. Both are
package-scoped: started once, and gone when this folder's tests are done rather than held
through the rest of the suite.

The test process is a Ray driver of the same cluster, so a test can ask a replica what it
did (``info``) or kill it (``ray.kill``) while the front door runs jobs on it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.ci import missing
from tests.server.procs import ServerProcess

NAMESPACE = "sfumato"  # the front door's default cluster.namespace
OBJECT_STORE = 200 * 1024 * 1024


@pytest.fixture(scope="package")
def ray_address() -> Iterator[str]:
    try:
        import ray
    except ImportError:
        missing("Ray is not installed", "pip install 'sfumato[cluster]' (./dev setup does)")
    from sfumato.service.cluster import NICENESS

    os.environ[NICENESS] = "0"  # the replicas compete for the CPU as they would on a node
    ray.init(  # set up as docs/scaling.md says (Ray's own default is niceness 15)
        num_cpus=2,  # two CPU replicas of one core each
        include_dashboard=False,
        object_store_memory=OBJECT_STORE,
        namespace=NAMESPACE,
        log_to_driver=False,
    )
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


@pytest.fixture(scope="package")
def cluster_registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The front door's registry file (the built-in entries); a test adds one while it runs."""
    registry = tmp_path_factory.mktemp("cluster") / "registry.toml"
    registry.write_text("include_builtin = true\n")
    return registry


@pytest.fixture(scope="package")
def cluster_server(
    ray_address: str, cluster_registry: Path, model_cache: Path
) -> Iterator[ServerProcess]:
    folder = cluster_registry.parent
    config = folder / "sfumato.toml"
    config.write_text("[limits]\nmax_queued_jobs = 10\n\n[cluster]\nray = true\n")
    server = ServerProcess(
        folder / "results", model_cache, folder / "server.log",
        "--config", str(config), "--ray", ray_address, "--replicas", "2", "--no-preload",
        "--registry", str(cluster_registry), timeout=120,
    )  # fmt: skip
    try:
        yield server
    finally:
        server.stop()
        server.check_log()


def replicas() -> list[Any]:
    """The front door's replica actors, by name (``<host>-<pid>-replica-<n>``), in order."""
    import ray
    from ray.util import list_named_actors

    names = sorted(
        a["name"] for a in list_named_actors(all_namespaces=True) if a["namespace"] == NAMESPACE
    )
    found = []
    for name in names:
        try:
            found.append(ray.get_actor(name, namespace=NAMESPACE))
        except ValueError:  # killed for good between the listing and the lookup (CI saw it)
            continue
    return found


def infos() -> list[Any]:
    """What each replica says about itself (sfumato.service.replica_actor.ReplicaInfo)."""
    import ray

    return ray.get([a.info.options(concurrency_group="control").remote() for a in replicas()])
