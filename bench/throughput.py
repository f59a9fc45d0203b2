"""Throughput: N releases of N different projects requested at once, on a
worker of W processes, all the way to verified on one local index.

First one release alone, to know one release's work (the time its jobs
ran, added up): a new project's first release, with uv's cache warm, as
each of the N is (each project makes its own build environment at its
first build); then N at once. The time to drain the N is held against
N x (one release's work) / W, the best the workers could do: the target is
within 1.3 times that.

    python -m bench.throughput [--releases 20] [--workers 2] [--embedded]
"""

from __future__ import annotations

import argparse
import os
import time
import uuid

from bench.common import Stopwatch, bench_stack, table


def work_seconds(release_id: int) -> float:
    """How long the release's jobs ran, added up."""
    from releases.models import Job

    return sum(job.duration_seconds or 0 for job in Job.objects.filter(release_id=release_id))


def request(repo, environment, version: str) -> int:  # type: ignore[no-untyped-def]
    from releases.selectors.lookups import project_by_name
    from releases.services.publishing import release_publish

    publication = release_publish(
        project=project_by_name(repo.name), version=version, ref=f"v{version}", environment=environment, actor=None
    )
    return int(publication.release.pk)


def wait_verified(release_ids: list[int], timeout: float) -> None:
    from releases.models import Deployment

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = list(Deployment.objects.filter(release_id__in=release_ids).values_list("state", "outcome", "reason"))
        if len(rows) == len(release_ids) and all(state == "finished" for state, _, _ in rows):
            failed = [reason for _, outcome, reason in rows if outcome != "succeeded"]
            if failed:
                raise SystemExit(f"{len(failed)} deployments did not succeed; the first: {failed[0]}")
            return
        time.sleep(0.05)
    raise SystemExit(f"not all {len(release_ids)} deployments ended within {timeout:.0f} s")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--releases", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2, help="Worker processes (one job at a time each).")
    parser.add_argument("--embedded", action="store_true", help="SQLite and the embedded broker.")
    args = parser.parse_args(argv)
    with bench_stack("bench-throughput-", embedded=args.embedded) as stack:
        tmp, devpi = stack.tmp, stack.devpi
        from releases.services.projects import environment_create, project_create
        from tests.support.sample import SampleRepo
        from tests.support.worker import WorkerProcess

        workers = [WorkerProcess(tmp / "logs", f"bench-worker-{n}", env=dict(os.environ)) for n in range(args.workers)]
        try:
            for worker in workers:
                worker.start()
            account = devpi.new_index()
            run = uuid.uuid4().hex[:6]
            environment = environment_create(
                name=f"throughput-{run}",
                upload_url=account.upload_url,
                index_url=account.simple_url,
                username=account.user,
                token=account.password,
                actor=None,
            )
            repos = []
            for n in range(args.releases + 2):
                repo = SampleRepo(tmp / f"repo-{n}", name=f"throughput-{run}-{n:02d}")
                repo.commit_version("1.0.0", tag="v1.0.0")
                project_create(name=repo.name, source=str(repo.path), actor=None)
                repos.append(repo)
            # Warm uv's cache, as a worker that has run before has it. Each
            # project then makes its own build environment at its first
            # build: the release alone is a new project's first, as each of
            # the N is.
            warm = request(repos[0], environment, "1.0.0")
            wait_verified([warm], 300)
            clock = Stopwatch()
            alone = request(repos[1], environment, "1.0.0")
            wait_verified([alone], 300)
            one_elapsed = clock.seconds()
            one_work = work_seconds(alone)

            clock = Stopwatch()
            ids = [request(repo, environment, "1.0.0") for repo in repos[2:]]
            wait_verified(ids, 900)
            drained = clock.seconds()
            batch_work = sum(work_seconds(release_id) for release_id in ids)
        finally:
            for worker in workers:
                worker.stop()
    ideal = args.releases * one_work / args.workers
    print(
        table(
            ["measure", "seconds"],
            [
                ["one release alone, request to verified", one_elapsed],
                ["one release's work (its jobs' running time)", one_work],
                [f"{args.releases} releases at once, request to all verified", drained],
                [f"{args.releases} x one release's work / {args.workers} workers", ideal],
                [
                    f"the {args.releases} releases' work, as it ran side by side / {args.workers} workers",
                    batch_work / args.workers,
                ],
            ],
        )
    )
    print(
        f"{args.releases} releases on {args.workers} workers drained in {drained:.1f} s, "
        f"{drained / ideal:.2f} x the ideal {ideal:.1f} s (target <= 1.30)"
    )


if __name__ == "__main__":
    main()
