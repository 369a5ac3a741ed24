"""The one place a Docker SDK client is made (DOCKER_HOST is honoured, so Podman works too)."""

from __future__ import annotations

from typing import Any

from discovery.sandbox.base import SandboxUnavailable


def connect() -> Any:
    """A Docker SDK client that answers a ping, or SandboxUnavailable saying how to get one."""
    try:
        import docker

        client = docker.from_env(timeout=120)
        client.ping()
    except Exception as exc:  # noqa: BLE001 - the SDK raises many types for "no engine"
        raise SandboxUnavailable(
            "no Docker engine answers (start one: `dockerd --iptables=false --ip-masq=false --bridge=none &`, "
            f"or point DOCKER_HOST at a Podman service): {exc}"
        ) from exc
    return client
