"""The executor seam without a cluster: Ray's absence, cluster slots, the task bundle, the node column."""

from __future__ import annotations

import json
import sys
import tempfile

import pytest

from discovery.archive import Archive
from discovery.archive.schema import SCHEMA_VERSION
from discovery.errors import UserError
from discovery.evaluation.executors import bundle
from discovery.evaluation.executors.ray import import_ray, slots
from discovery.sandbox.hostpaths import sandboxes_dir


def test_without_ray_the_user_is_told_how_to_install_it(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` fail
    with pytest.raises(UserError, match=r"pip install 'discovery-lab\[ray\]'"):
        import_ray()


def test_slots_count_whole_evaluations_on_alive_nodes_only() -> None:
    need = {"CPU": 2.0, "memory": 1024.0}
    nodes = [
        {"Alive": True, "Resources": {"CPU": 5.0, "memory": 4096.0}},  # 2 (CPU-bound)
        {"Alive": True, "Resources": {"CPU": 1.5, "memory": 8192.0}},  # 0: a fraction is not a slot
        {"Alive": False, "Resources": {"CPU": 64.0, "memory": 65536.0}},  # dead
        {"Alive": True, "Resources": {"CPU": 8.0, "memory": 1024.0}},  # 1 (memory-bound)
    ]
    assert slots(nodes, need) == 3
    assert slots(nodes, need | {"GPU": 1.0}) == 0


def test_the_bundle_packs_the_same_bytes_and_unpacks_readable(toy_task, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    data = bundle.pack(toy_task, sandboxes_dir())
    assert bundle.digest(data) == bundle.digest(bundle.pack(toy_task, sandboxes_dir()))
    name = bundle.digest(data)
    assert bundle.unpacked(name) is None
    root = bundle.unpack(name, data)
    assert bundle.unpack(name, data) == root == bundle.unpacked(name)  # a second unpack keeps the first
    assert (root / "task" / "task.toml").read_text() == (toy_task / "task.toml").read_text()
    assert (root / "runner" / "runner.py").is_file()
    assert (root / "task" / "evaluate.py").stat().st_mode & 0o044 == 0o044
    assert not list(root.rglob("__pycache__"))


def test_an_older_archive_gains_the_node_column(tmp_path) -> None:
    archive = Archive.create(tmp_path / "run", {"task": "t"})
    archive.db.execute("ALTER TABLE candidates DROP COLUMN node")
    archive.db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (json.dumps(3),))
    archive.close()
    archive = Archive.open(tmp_path / "run")
    assert archive.meta()["schema_version"] == SCHEMA_VERSION
    seed = archive.add_seed("def solve():\n    return 1\n", "h")
    archive.record_evaluation(
        seed, "ok", 1.0, 1.0, {}, None, None, "", "bwrap", "train", 0.1, node="10.0.0.2/ab12"
    )
    assert archive.candidate(seed).node == "10.0.0.2/ab12"
    archive.close()
