"""Multi-file candidates in a real SQLite archive: content-addressed blobs, manifests and migration."""

from __future__ import annotations

from discovery.archive import Archive
from discovery.archive.schema import SCHEMA_VERSION
from discovery.archive.views import diff_candidates
from discovery.program.tree import from_listing, to_listing


def counts(archive: Archive) -> tuple[int, int]:
    """Rows in blobs and in candidate_files."""
    blobs = archive.db.execute("SELECT COUNT(*) FROM blobs").fetchone()[0]
    manifest = archive.db.execute("SELECT COUNT(*) FROM candidate_files").fetchone()[0]
    return blobs, manifest


def add_child(archive: Archive, parent: int, tree: dict[str, str], n: int) -> int:
    call = archive.start_call("m", "diff", parent, n, "prompt")
    return archive.finish_call_with_candidate(
        call, "reply", {}, parent, "diff", to_listing(tree), f"h{n}", files=tree
    )


def test_a_child_with_one_changed_file_stores_one_new_blob(tmp_path):
    archive = Archive.create(tmp_path / "run", {"task": "t"})
    try:
        seed = {f"pkg/m{i:02}.py": f"X = {i}\n" for i in range(20)}
        seed_id = archive.add_seed(to_listing(seed), "h0", files=seed)
        assert counts(archive) == (20, 20)
        child = {**seed, "pkg/m07.py": "X = 700\n"}
        child_id = add_child(archive, seed_id, child, 1)
        assert counts(archive) == (21, 40)
        # A grandchild that changes the file back stores no new blob at all.
        add_child(archive, child_id, seed, 2)
        assert counts(archive) == (21, 60)
        # The tree lives in the blobs, not in the code column, and reads back whole.
        assert archive.db.execute("SELECT code FROM candidates WHERE id=?", (child_id,)).fetchone()[0] == ""
        assert from_listing(archive.candidate(child_id).code) == child
        assert [from_listing(c.code) for c in archive.candidates()][:2] == [seed, child]
    finally:
        archive.close()
    diff = diff_candidates(tmp_path / "run", seed_id, child_id)
    assert "--- a/pkg/m07.py" in diff and "-X = 7\n" in diff and "+X = 700\n" in diff
    assert "m08" not in diff


def test_a_rejected_reply_is_stored_as_text_without_a_tree(tmp_path):
    archive = Archive.create(tmp_path / "run", {"task": "t"})
    try:
        seed = {"a.py": "A = 1\n", "b.py": "B = 1\n"}
        seed_id = archive.add_seed(to_listing(seed), "h0", files=seed)
        call = archive.start_call("m", "diff", seed_id, 1, "p")
        rid = archive.finish_call_with_candidate(
            call, "File: ../x\n...", {}, seed_id, "diff", "File: ../x\n...", "r", "rejected_forbidden", "why"
        )
        assert archive.candidate(rid).code == "File: ../x\n..." and counts(archive) == (2, 2)
    finally:
        archive.close()


def test_an_older_archive_reads_as_it_is_and_migrates_on_open(tmp_path):
    run = tmp_path / "old"
    old = Archive.create(run, {"task": "t"})
    old.add_seed("def solve():\n    return 1\n", "h")
    old.db.execute("DROP TABLE candidate_files")
    old.db.execute("DROP TABLE blobs")
    old.db.execute("UPDATE meta SET value='4' WHERE key='schema_version'")
    old.close()
    readonly = Archive.open_readonly(run)  # no migration: single-file rows read from their column
    try:
        assert readonly.seed().code == "def solve():\n    return 1\n"
    finally:
        readonly.close()
    upgraded = Archive.open(run)
    try:
        assert upgraded.meta()["schema_version"] == SCHEMA_VERSION
        assert upgraded.seed().code == "def solve():\n    return 1\n" and counts(upgraded) == (0, 0)
        tree = {"a.py": "A = 1\n"}
        cid = add_child(upgraded, 1, tree, 1)
        assert from_listing(upgraded.candidate(cid).code) == tree
    finally:
        upgraded.close()


def test_the_web_candidate_view_shows_the_tree_and_a_per_file_diff(tmp_path):
    from discovery.archive.views import candidate_view, read_only

    archive = Archive.create(tmp_path / "run", {"task": "t"})
    try:
        seed = {"a.py": "A = 1\n", "b.py": "B = 1\n"}
        child = {**seed, "b.py": "B = 2\n"}
        child_id = add_child(archive, archive.add_seed(to_listing(seed), "h0", files=seed), child, 1)
    finally:
        archive.close()
    with read_only(tmp_path / "run") as db:
        view = candidate_view(db, child_id)
    assert from_listing(view["code"]) == child
    assert view["diffs"][0]["label"] == "parent"
    assert "+++ b/b.py" in view["diffs"][0]["diff"] and "a.py" not in view["diffs"][0]["diff"]
