"""Offline image builds: the skeleton (bind-mounts the host's Python) and debootstrap images."""

from __future__ import annotations

import asyncio
import io
import json
import shutil
import sys
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from discovery.errors import UserError
from discovery.sandbox.docker import DockerSandbox
from discovery.sandbox.images import (
    LABEL_BINDS,
    LABEL_KIND,
    LABEL_PYTHON,
    build_image,
    image_info,
    list_images,
    skeleton_binds,
    skeleton_is_current,
    skeleton_tar,
)
from tests.sandbox_fixtures import docker_or_skip, make_task, parse_result, skeleton_image

pytestmark = pytest.mark.slow


def test_skeleton_tar_holds_only_mount_points_and_accounts() -> None:
    binds = skeleton_binds()
    with tarfile.open(fileobj=io.BytesIO(skeleton_tar(binds))) as tar:
        members = {m.name: m for m in tar.getmembers()}
        passwd = tar.extractfile("etc/passwd").read().decode()
    assert members["tmp"].mode == 0o1777
    for mount in ("task", "runner", "candidate"):
        assert members[mount].isdir()
    assert "nobody:x:65534:65534" in passwd
    regular = [m.name for m in members.values() if m.isfile() and m.size > 0]
    assert sorted(regular) == ["etc/group", "etc/passwd"]  # no host file is copied in
    for _host, target in binds:
        assert target.strip("/") in members


def test_skeleton_binds_cover_the_interpreter() -> None:
    targets = [t for _h, t in skeleton_binds()]
    exe = Path(sys.executable).resolve()
    assert any(exe.is_relative_to(t) for t in targets)


@pytest.fixture(scope="module")
def image() -> Iterator[str]:
    """A freshly built skeleton image."""
    yield from skeleton_image()


def test_skeleton_image_labels(image: str) -> None:
    client = docker_or_skip()
    labels = image_info(client, image)
    assert labels[LABEL_KIND] == "skeleton"
    assert labels[LABEL_PYTHON] == sys.executable
    assert [tuple(b) for b in json.loads(labels[LABEL_BINDS])] == skeleton_binds()
    assert skeleton_is_current(labels)
    assert not skeleton_is_current({**labels, LABEL_PYTHON: "/elsewhere/python"})
    assert (image, "skeleton") in list_images(client)


def test_skeleton_image_sees_numpy(image: str, tmp_path: Path) -> None:
    task = make_task(tmp_path, "import numpy\ndef solve():\n    return float(numpy.arange(4).sum())\n")
    sandbox = DockerSandbox(image)
    try:
        result = asyncio.run(sandbox.run(task.job()))
    finally:
        sandbox.close()
    assert parse_result(result)["score"] == 6.0, result.stderr[-2000:]


def test_unknown_kind_is_a_user_error() -> None:
    with pytest.raises(UserError, match="skeleton"):
        build_image("nonsense", "x:y")


@pytest.mark.slow
def test_debootstrap_image_runs_the_runner(tmp_path: Path) -> None:
    if shutil.which("debootstrap") is None:
        pytest.skip("debootstrap is not installed (apt-get install -y debootstrap)")
    client = docker_or_skip()
    name = "discovery-test-debian:" + uuid.uuid4().hex[:10]
    try:
        build_image("debootstrap", name)
    except UserError as exc:
        pytest.skip(f"no Debian mirror reachable: {exc}")
    try:
        task = make_task(tmp_path, "import numpy\ndef solve():\n    return float(numpy.ones(3).sum())\n")
        sandbox = DockerSandbox(name)
        try:
            result = asyncio.run(sandbox.run(task.job()))
        finally:
            sandbox.close()
        assert parse_result(result)["score"] == 3.0, result.stderr[-2000:]
    finally:
        client.images.remove(name, force=True)
