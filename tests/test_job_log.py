"""A job's log: every line a tool prints is stored, in order, redacted; and
the log's writer stops the job when it can no longer store its lines."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.utils import timezone

from releases.errors import JobLost
from releases.models import Job, JobLogLine, Project, Release
from releases.services.job_log import BATCH, workspace_close, workspace_open
from releases.services.jobs import job_claim
from releases.steps import runner
from releases.steps.workspace import Workspace
from tests.conftest import wait_for

# The tool prints a fixed output (numbered lines, longer than the tool's pipe
# holds and than one batch of the log), with the lines a log must keep as
# they are, or change, at fixed places.
TOOL = """\
import sys
token = "_".join(["ghp", "a1B2c3D4e5F6" * 3])
out = sys.stdout.buffer
for i in range(int(sys.argv[1])):
    if i == 100:
        out.write(f"uploading with {token} now\\n".encode())
    elif i == 200:
        out.write(b"a\\x00nul, a\\ttab, a \\\\ backslash\\r\\n")
    elif i == 300:
        out.write(b"invalid \\xff utf-8\\n")
    else:
        out.write(f"[{i:>6}] compiling module_{i % 977}.c -> {'0123456789abcdef' * 2}\\n".encode())
out.write(b"no newline at the end")
"""


def expected_line(i: int) -> str:
    if i == 100:
        return "uploading with [redacted] now"
    if i == 200:
        return "a\ufffdnul, a\ttab, a \\ backslash"
    if i == 300:
        return "invalid \ufffd utf-8"
    return f"[{i:>6}] compiling module_{i % 977}.c -> {'0123456789abcdef' * 2}"


@pytest.fixture
def ctx(transactional_db: None, tmp_path: Path) -> Iterator[Workspace]:
    """A running job's context; its log writes through its own connection, so rows are committed."""
    project = Project.objects.create(name=f"log-{uuid.uuid4().hex[:8]}", source=str(tmp_path))
    release = Release.objects.create(project=project, version="1.0.0", ref="main")
    job = Job.objects.create(kind=Job.Kind.BUILD, release=release)
    claim = job_claim(job.pk, worker="tests")
    assert claim is not None
    context = workspace_open(job, claim)
    yield context
    context.log.close()


def stored(job_id: int) -> list[tuple[int, str]]:
    return list(JobLogLine.objects.filter(job_id=job_id).order_by("number").values_list("number", "text"))


def test_every_line_a_tool_prints_is_stored_in_order_and_redacted(ctx, tmp_path):
    count = 3 * BATCH
    tool = tmp_path / "tool.py"
    tool.write_text(TOOL)

    result = runner.run(ctx, [sys.executable, str(tool), str(count)], show=["python", "tool.py"])
    workspace_close(ctx)

    lines = stored(ctx.job_id)
    assert [number for number, _ in lines] == list(range(1, count + 3))
    assert lines[0][1] == "$ python tool.py"
    assert [text for _, text in lines[1:]] == [expected_line(i) for i in range(count)] + ["no newline at the end"]
    assert not any("ghp_" in text for _, text in lines)
    assert result.tail[-1] == "no newline at the end"
    assert Job.objects.get(pk=ctx.job_id).log_lines == count + 2


def test_a_log_written_faster_than_it_is_stored_keeps_every_line_in_order(ctx):
    # Many chunks queued at once: stored in batches of at most BATCH lines,
    # none lost or reordered at a batch's edge.
    chunks = [[f"chunk {c} line {n}" for n in range(c % 7 + 1)] for c in range(BATCH // 2)]
    for chunk in chunks:
        ctx.log.write_lines(chunk)
    ctx.log.close()

    lines = stored(ctx.job_id)
    assert [text for _, text in lines] == [line for chunk in chunks for line in chunk]
    assert [number for number, _ in lines] == list(range(1, len(lines) + 1))
    assert max(len(chunk) for chunk in chunks) < BATCH < sum(len(chunk) for chunk in chunks)


def test_a_log_whose_job_was_taken_over_stops_the_command(ctx, tmp_path):
    # Another worker claimed the job (the reaper requeued it and it ran again).
    Job.objects.filter(pk=ctx.job_id).update(attempts=ctx.log.claim.attempt + 1)
    tool = tmp_path / "forever.py"
    tool.write_text("import time\nwhile True:\n    print('still here', flush=True)\n    time.sleep(0.05)\n")

    with pytest.raises(JobLost):
        runner.run(ctx, [sys.executable, str(tool)], timeout=120)

    assert ctx.log.lost.is_set()


def test_a_log_the_database_refuses_leaves_the_job_running_for_the_reaper(ctx):
    # A line already holds the number the log would give its next one: the
    # database refuses the batch. The writer stops, the job is marked lost to
    # this worker, and the job's row is left as it was for the reaper.
    JobLogLine.objects.create(job_id=ctx.job_id, number=1, created_at=timezone.now(), text="in the way")
    ctx.log.write("a line")

    wait_for(ctx.log.lost.is_set, timeout=30)
    with pytest.raises(JobLost):
        ctx.check_owned()
    job = Job.objects.get(pk=ctx.job_id)
    assert job.state == Job.State.RUNNING
    assert stored(ctx.job_id) == [(1, "in the way")]


def test_deleting_a_job_deletes_its_log(ctx):
    ctx.log.write("one\ntwo")
    ctx.log.close()
    assert len(stored(ctx.job_id)) == 2

    Job.objects.filter(pk=ctx.job_id).delete()

    assert not JobLogLine.objects.filter(job_id=ctx.job_id).exists()


def test_a_log_whose_job_is_gone_stops_the_command(ctx, tmp_path):
    # No foreign key in the database refuses its lines: the claim, checked
    # with every batch, finds the job gone.
    tool = tmp_path / "forever.py"
    tool.write_text("import time\nwhile True:\n    print('still here', flush=True)\n    time.sleep(0.05)\n")
    ctx.log.write("before")
    wait_for(lambda: stored(ctx.job_id))
    Job.objects.filter(pk=ctx.job_id).delete()

    with pytest.raises(JobLost):
        runner.run(ctx, [sys.executable, str(tool)], timeout=120)
