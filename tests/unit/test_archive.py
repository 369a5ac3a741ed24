"""The SQLite archive: atomic records, budget accounting, single evaluation, and the event log."""

from __future__ import annotations

import sqlite3

import pytest

from discovery.archive import Archive
from discovery.archive.schema import SCHEMA_VERSION
from discovery.domain import code_hash
from discovery.errors import UserError


@pytest.fixture
def archive(tmp_path):
    a = Archive.create(tmp_path / "run", {"task": "toy", "config": {"budget": 3}})
    yield a
    a.close()


def test_reply_and_candidate_are_recorded_together(archive):
    seed = archive.add_seed("x = 1\n", code_hash("x = 1"))
    call = archive.start_call("m", "diff", seed, 7, "prompt")
    assert archive.call(call)["status"] == "started"
    cid = archive.finish_call_with_candidate(
        call, "reply", {"prompt_tokens": 3, "cost_usd": 0.5}, seed, "diff", "x = 2\n", code_hash("x = 2")
    )
    row = archive.call(call)
    assert row["status"] == "ok" and row["reply"] == "reply" and row["cost_usd"] == 0.5
    assert archive.candidate(cid).status == "pending" and archive.candidate(cid).parent_id == seed
    kinds = [e["kind"] for e in archive.events()]
    assert kinds == ["candidate_created", "call_started", "call_finished", "candidate_created"]


def test_a_candidate_is_evaluated_only_once(archive):
    cid = archive.add_seed("x = 1\n", "h")
    archive.record_evaluation(cid, "ok", 1.0, 1.0, {"score": 1.0}, None, None, "", "process", "train", 0.1)
    with pytest.raises(RuntimeError, match="not pending"):
        archive.record_evaluation(cid, "ok", 2.0, 2.0, {}, None, None, "", "process", "train", 0.1)
    assert archive.candidate(cid).score == 1.0
    assert len(archive.events("candidate_evaluated")) == 1


def test_interrupted_calls_still_count_against_the_budget(archive):
    archive.start_call("m", "diff", None, 1, "p")
    archive.start_call("m", "diff", None, 2, "p")
    assert archive.interrupt_unfinished_calls() == 2
    assert archive.calls_made() == 2
    assert {archive.call(i)["status"] for i in (1, 2)} == {"interrupted"}


def test_duplicates_ignore_rejected_programs(archive):
    seed = archive.add_seed("x = 1\n", "same")
    call = archive.start_call("m", "diff", seed, 1, "p")
    archive.finish_call_with_candidate(call, "r", {}, seed, "diff", "junk", "other", "rejected_syntax", "bad")
    assert archive.has_hash("same") and not archive.has_hash("other")


def test_best_respects_fitness_direction(archive):
    a = archive.add_seed("a\n", "a")
    call = archive.start_call("m", "diff", a, 1, "p")
    b = archive.finish_call_with_candidate(call, "r", {}, a, "diff", "b\n", "b")
    # minimisation task: lower score, higher fitness
    archive.record_evaluation(a, "ok", 5.0, -5.0, {}, None, None, "", "process", "train", 0.1)
    archive.record_evaluation(b, "ok", 3.0, -3.0, {}, None, None, "", "process", "train", 0.1)
    assert archive.best().id == b
    assert [c.id for c in archive.lineage(b)] == [b, a]


def test_the_file_is_plain_sqlite_in_wal_mode(archive):
    archive.add_seed("x\n", "h")
    db = sqlite3.connect(archive.path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("SELECT code FROM candidates").fetchone()[0] == "x\n"


def test_open_missing_archive_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no archive"):
        Archive.open(tmp_path / "nope")


def test_create_refuses_to_overwrite(tmp_path, archive):
    with pytest.raises(UserError, match="already exists"):
        Archive.create(archive.path.parent, {})


def test_failed_children_are_the_latest_failures_of_that_parent(archive):
    seed = archive.add_seed("s\n", "s")
    assert archive.seed().id == seed
    ids = []
    for n, (status, failure) in enumerate(
        [
            ("rejected_syntax", "bad 1"),
            ("pending", None),
            ("rejected_syntax", "bad 2"),
            ("rejected_prose", "bad 3"),
            ("rejected_syntax", "bad 4"),
        ]
    ):
        call = archive.start_call("m", "diff", seed, n, "p")
        ids.append(
            archive.finish_call_with_candidate(
                call, "r", {}, seed, "diff", f"c{n}\n", f"h{n}", status, failure
            )
        )
    other = archive.finish_call_with_candidate(
        archive.start_call("m", "diff", ids[1], 9, "p"),
        "r",
        {},
        ids[1],
        "diff",
        "o\n",
        "o",
        "rejected_syntax",
        "x",
    )
    failed = archive.failed_children(seed, 3)
    assert [c.failure for c in failed] == ["bad 2", "bad 3", "bad 4"]
    assert other not in [c.id for c in archive.failed_children(seed, 10)]
    assert [c.id for c in archive.failed_children(ids[1], 3)] == [other]


def test_a_version_2_archive_gains_the_agent_calls_table_on_open(tmp_path):
    run = tmp_path / "old"
    old = Archive.create(run, {"task": "t"})
    old.db.execute("DROP TABLE agent_calls")
    old.db.execute("UPDATE meta SET value='2' WHERE key='schema_version'")
    old.close()
    upgraded = Archive.open(run)
    try:
        assert upgraded.meta()["schema_version"] == SCHEMA_VERSION
        assert upgraded.agent_calls() == [] and upgraded.agent_cost() == 0
    finally:
        upgraded.close()


def test_agent_calls_are_stored_in_order_and_counted_in_the_run_cost(archive):
    cid = archive.add_seed("x = 1", code_hash("x = 1"))
    call = {
        "candidate_id": cid,
        "evaluation": "search:train:0",
        "split": "train",
        "seed": 0,
        "started_at": 1.0,
    }
    archive.record_agent_call(
        {**call, "model": "m", "messages": [{"role": "user", "content": "q"}], "reply": ["a"], "status": "ok"}
        | {"sample_index": 3, "prompt_tokens": 5, "completion_tokens": 2, "cost_usd": 0.25, "latency_s": 0.1}
    )
    archive.record_agent_call({**call, "model": "m", "messages": [], "status": "refused", "error": "budget"})
    calls = archive.agent_calls(cid)
    assert [c["status"] for c in calls] == ["ok", "refused"]
    assert calls[0]["reply"] == ["a"] and calls[0]["sample_index"] == 3 and calls[1]["reply"] is None
    assert archive.total_cost() == pytest.approx(0.25) and archive.mutation_cost() == 0
    assert archive.agent_usage()["calls"] == 2 and archive.agent_usage()["not_ok"] == 1
