"""The console's one door to GitHub's REST API, through PyGithub.

Every call is classified on the way out:

* transient (connection errors, 5xx, secondary rate limits with
  ``Retry-After``, the primary rate limit until ``X-RateLimit-Reset``):
  retried by PyGithub's ``GithubRetry`` with exponential backoff, each wait
  capped at ``GITHUB_MAX_WAIT``; what is still failing after
  ``GITHUB_RETRIES`` becomes ``TransientError`` with the time to try again;
* permanent (401, 403, 404, 422): ``StepFailed`` with a sentence saying
  what to fix.

A dispatch (a POST) is not retried on a 5xx, because GitHub may have
started the run anyway; the caller looks for the run instead.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any

import requests
from github import Auth, Github
from github.GithubException import (
    BadCredentialsException,
    GithubException,
    RateLimitExceededException,
    UnknownObjectException,
)
from github.GithubRetry import GithubRetry
from github.Repository import Repository
from github.Workflow import Workflow
from github.WorkflowRun import WorkflowRun as GitHubRun
from urllib3.response import BaseHTTPResponse

from releases.clients.http import is_transient_status
from releases.errors import StepFailed, TransientError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GitHubConfig:
    """How patient the client is (console/settings.py's GITHUB_* values)."""

    timeout: int = 15
    retries: int = 5
    retry_backoff: float = 1.0
    max_wait: int = 120
    throttle: float = 0.25
    logs_max_bytes: int = 50 * 1024 * 1024


class _Retry(GithubRetry):
    """GitHub's retry rules, with every wait capped and no POST replayed on a 5xx."""

    def __init__(self, *, max_wait: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_wait = max_wait

    def new(self, **kwargs: Any) -> _Retry:
        # urllib3 makes a new Retry after each attempt; the cap goes with it.
        kwargs.setdefault("max_wait", self.max_wait)
        return super().new(**kwargs)

    def get_retry_after(self, response: BaseHTTPResponse) -> float | None:
        value = super().get_retry_after(response)
        return None if value is None else min(value, self.max_wait)

    def is_retry(self, method: str, status_code: int, has_retry_after: bool = False) -> bool:
        if method == "POST" and status_code >= 500:
            return False
        return bool(super().is_retry(method, status_code, has_retry_after))


@dataclass(frozen=True)
class RunState:
    """What the console keeps of a workflow run."""

    id: int
    html_url: str
    status: str
    conclusion: str
    head_sha: str
    event: str
    created_at: datetime | None


@dataclass(frozen=True)
class JobState:
    name: str
    status: str
    conclusion: str
    html_url: str
    steps: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "conclusion": self.conclusion,
            "html_url": self.html_url,
            "steps": self.steps,
        }


@dataclass(frozen=True)
class RunArtifact:
    """One artifact a workflow run uploaded (a zip GitHub keeps for a while)."""

    id: int
    name: str
    size: int
    expired: bool
    download_url: str
    sha256: str  # of the zip, when GitHub says (artifacts uploaded since 2025); else ""


def _run_state(run: GitHubRun) -> RunState:
    return RunState(
        id=run.id,
        html_url=run.html_url or "",
        status=run.status or "",
        conclusion=run.conclusion or "",
        head_sha=run.head_sha or "",
        event=run.event or "",
        created_at=run.created_at,
    )


class GitHubClient:
    """The GitHub API of one repository, as one token sees it."""

    def __init__(
        self,
        repository: str,
        *,
        workflow_file: str,
        api_url: str = "https://api.github.com",
        token: str | None = None,
        config: GitHubConfig | None = None,
    ) -> None:
        if not repository:
            raise StepFailed("The project has no GitHub repository: set it (owner/name) on the project.")
        self.repository_name = repository
        self.workflow_file = workflow_file
        self.api_url = api_url
        self.config = config or GitHubConfig()
        config = self.config
        self.github = Github(
            base_url=api_url.rstrip("/"),
            auth=Auth.Token(token) if token else None,
            timeout=config.timeout,
            retry=_Retry(
                total=config.retries,
                backoff_factor=config.retry_backoff,
                backoff_max=float(max(config.max_wait, 1)),
                secondary_rate_wait=float(config.max_wait),
                max_rate_limit_wait=float(config.max_wait),
                max_wait=float(config.max_wait),
                # Return the last answer once retries run out, so that the
                # error names GitHub's status and message.
                raise_on_status=False,
            ),
            seconds_between_requests=config.throttle,
            seconds_between_writes=config.throttle * 4,
        )
        self._repository: Repository | None = None
        self._workflow: Workflow | None = None
        self.inputs_sent: dict[str, str] = {}

    def close(self) -> None:
        self.github.close()

    # -- errors --------------------------------------------------------------

    @contextmanager
    def _calling(self, doing: str, *, dispatching: bool = False) -> Iterator[None]:
        """Turn what PyGithub raises while ``doing`` into StepFailed or TransientError."""
        try:
            yield
        except (StepFailed, TransientError):
            raise
        except RateLimitExceededException as exc:
            raise TransientError(f"GitHub's rate limit stopped {doing}: {_rate_limit_hint(exc)}") from None
        except BadCredentialsException:
            raise StepFailed(
                f"GitHub refused the token while {doing} (401 Bad credentials): the project's GitHub token is "
                "wrong, expired or revoked. Replace it with a fine-grained token that has Actions read and "
                f"write and Contents read on {self.repository_name}."
            ) from None
        except UnknownObjectException:
            raise StepFailed(
                f"GitHub answered 404 while {doing}: check the repository ({self.repository_name}) and the "
                f"workflow file ({self.workflow_file}, under .github/workflows/), and that the token "
                "can see that repository."
            ) from None
        except GithubException as exc:
            message = _message(exc)
            if exc.status == 422 and dispatching:
                raise StepFailed(
                    f"GitHub refused to dispatch {self.workflow_file} (422: {message}). The workflow needs "
                    "an 'on: workflow_dispatch' trigger declaring the inputs the console sends "
                    f"({', '.join(sorted(self.inputs_sent)) or 'none'}), on the ref being released."
                ) from None
            if exc.status == 403:
                raise StepFailed(
                    f"GitHub refused {doing} (403: {message}): give the project's token Actions read and write "
                    f"and Contents read on {self.repository_name}."
                ) from None
            if exc.status == 429:
                raise TransientError(f"GitHub's rate limit stopped {doing}: {_rate_limit_hint(exc)}") from None
            if exc.status is not None and is_transient_status(exc.status):
                raise TransientError(
                    f"GitHub answered {exc.status} while {doing}, {self.config.retries} retries later still; "
                    "it is probably having trouble: try again later."
                ) from None
            raise StepFailed(f"GitHub answered {exc.status} while {doing}: {message}") from None
        except requests.RequestException as exc:
            raise TransientError(
                f"GitHub ({self.api_url}) could not be reached while {doing} ({type(exc).__name__})."
            ) from None

    # -- calls ---------------------------------------------------------------

    def repository(self) -> Repository:
        if self._repository is None:
            with self._calling(f"reading the repository {self.repository_name}"):
                # Reference: https://docs.github.com/en/rest/repos/repos#get-a-repository
                self._repository = self.github.get_repo(self.repository_name)
        return self._repository

    def workflow(self) -> Workflow:
        if self._workflow is None:
            repository = self.repository()
            with self._calling(f"reading the workflow {self.workflow_file}"):
                # Reference: https://docs.github.com/en/rest/actions/workflows#get-a-workflow
                self._workflow = repository.get_workflow(self.workflow_file)
        return self._workflow

    def dispatch(self, ref: str, inputs: dict[str, str]) -> int | None:
        """Start the workflow on ``ref``; the run's id when GitHub returns it.

        GitHub answers 204 with no body, or (since 2025, when asked with
        ``return_run_details``) 200 with the run's id and addresses. A 5xx
        raises TransientError: the run may have started nevertheless.
        """
        workflow = self.workflow()
        self.inputs_sent = inputs
        with self._calling(f"dispatching {self.workflow_file} on {ref}", dispatching=True):
            # Reference: https://docs.github.com/en/rest/actions/workflows#create-a-workflow-dispatch-event
            # Typed as always a run; an answer of 204 (no details) gives True.
            result: object = workflow.create_dispatch(ref, inputs, throw=True, return_run_details=True)
        if isinstance(result, GitHubRun):
            return result.id
        return None

    def find_runs(self, head_sha: str, created_since: datetime) -> list[RunState]:
        """Runs of the workflow started by a dispatch on ``head_sha`` since ``created_since``, oldest first."""
        workflow = self.workflow()
        since = created_since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        with self._calling(f"listing the runs of {self.workflow_file}"):
            # Reference: https://docs.github.com/en/rest/actions/workflow-runs#list-workflow-runs-for-a-workflow
            runs = workflow.get_runs(event="workflow_dispatch", head_sha=head_sha, created=f">={since}")
            found = [_run_state(run) for run in islice(runs, 100)]
        matching = [
            run
            for run in found
            if run.event == "workflow_dispatch"
            and run.head_sha == head_sha
            and (run.created_at is None or run.created_at >= created_since)
        ]
        return sorted(matching, key=lambda run: (run.created_at or created_since, run.id))

    def run(self, run_id: int) -> RunState:
        repository = self.repository()
        with self._calling(f"reading workflow run {run_id}"):
            # Reference: https://docs.github.com/en/rest/actions/workflow-runs#get-a-workflow-run
            return _run_state(repository.get_workflow_run(run_id))

    def run_jobs(self, run_id: int) -> list[JobState]:
        repository = self.repository()
        with self._calling(f"listing the jobs of workflow run {run_id}"):
            # Reference: https://docs.github.com/en/rest/actions/workflow-runs#get-a-workflow-run
            run = repository.get_workflow_run(run_id)
            # Reference: https://docs.github.com/en/rest/actions/workflow-jobs#list-jobs-for-a-workflow-run
            return [
                JobState(
                    name=job.name or "",
                    status=job.status or "",
                    conclusion=job.conclusion or "",
                    html_url=job.html_url or "",
                    steps=[
                        {"number": step.number, "name": step.name, "status": step.status, "conclusion": step.conclusion}
                        for step in job.steps
                    ],
                )
                for job in run.jobs()
            ]

    def run_logs(self, run_id: int) -> bytes:
        """The run's logs archive (a zip), at most ``config.logs_max_bytes``."""
        repository = self.repository()
        with self._calling(f"downloading the logs of workflow run {run_id}"):
            # Reference: https://docs.github.com/en/rest/actions/workflow-runs#download-workflow-run-logs
            # GitHub answers 302 to a short-lived address; PyGithub follows it
            # without the token when it points at another host.
            url = f"{repository.url}/actions/runs/{run_id}/logs"
            try:
                _, _, chunks = self.github.requester.getStream(url, chunk_size=64 * 1024)
            except requests.HTTPError as exc:
                status = exc.response.status_code if exc.response is not None else "an error"
                raise StepFailed(
                    f"GitHub answered {status} for the logs of run {run_id} (they are kept 90 days by default)."
                ) from None
            data = bytearray()
            for chunk in chunks:
                data.extend(chunk)
                if len(data) > self.config.logs_max_bytes:
                    raise StepFailed(f"The logs of run {run_id} exceed {self.config.logs_max_bytes} bytes.")
            return bytes(data)

    def commit_runs(self, head_sha: str) -> list[RunState]:
        """Runs of the workflow on ``head_sha``, whatever started them, newest first."""
        workflow = self.workflow()
        with self._calling(f"listing the runs of {self.workflow_file} on {head_sha[:12]}"):
            # Reference: https://docs.github.com/en/rest/actions/workflow-runs#list-workflow-runs-for-a-workflow
            found = [_run_state(run) for run in islice(workflow.get_runs(head_sha=head_sha), 100)]
        matching = [run for run in found if run.head_sha == head_sha]
        return sorted(matching, key=lambda run: run.id, reverse=True)

    def run_artifacts(self, run_id: int) -> list[RunArtifact]:
        repository = self.repository()
        with self._calling(f"listing the artifacts of workflow run {run_id}"):
            # Reference: https://docs.github.com/en/rest/actions/workflow-runs#get-a-workflow-run
            run = repository.get_workflow_run(run_id)
            # Reference: https://docs.github.com/en/rest/actions/artifacts#list-workflow-run-artifacts
            return [
                RunArtifact(
                    id=artifact.id,
                    name=artifact.name or "",
                    size=artifact.size_in_bytes or 0,
                    expired=bool(artifact.expired),
                    download_url=artifact.archive_download_url or "",
                    sha256=(artifact.raw_data.get("digest") or "").removeprefix("sha256:").lower(),
                )
                for artifact in islice(run.get_artifacts(), 100)
            ]

    def artifact_archive(self, artifact: RunArtifact, destination: Path, *, max_bytes: int) -> Path:
        """Download ``artifact``'s zip to ``destination``, at most ``max_bytes``,
        checked against the sha256 GitHub gives for it (when it gives one)."""
        with self._calling(f"downloading the artifact {artifact.name!r}"):
            # Reference: https://docs.github.com/en/rest/actions/artifacts#download-an-artifact
            # GitHub answers 302 to a short-lived address; PyGithub follows it
            # without the token when it points at another host.
            try:
                _, _, chunks = self.github.requester.getStream(artifact.download_url, chunk_size=64 * 1024)
            except requests.HTTPError as exc:
                status = exc.response.status_code if exc.response is not None else "an error"
                raise StepFailed(
                    f"GitHub answered {status} for the artifact {artifact.name!r} (artifacts are kept 90 days by "
                    "default; run the workflow again if it expired)."
                ) from None
            digest = hashlib.sha256()
            written = 0
            with destination.open("wb") as out:
                for chunk in chunks:
                    written += len(chunk)
                    if written > max_bytes:
                        raise StepFailed(f"The artifact {artifact.name!r} exceeds {max_bytes} bytes.")
                    digest.update(chunk)
                    out.write(chunk)
        if artifact.sha256 and digest.hexdigest() != artifact.sha256:
            raise StepFailed(
                f"The artifact {artifact.name!r} arrived with sha256 {digest.hexdigest()}, not the {artifact.sha256} "
                "GitHub lists for it; download it again."
            )
        return destination

    def refs(self) -> list[str]:
        """Tag names, then branch names."""
        repository = self.repository()
        with self._calling(f"listing the tags and branches of {self.repository_name}"):
            # Reference: https://docs.github.com/en/rest/repos/repos#list-repository-tags
            tags = [tag.name for tag in islice(repository.get_tags(), 200)]
            # Reference: https://docs.github.com/en/rest/branches/branches#list-branches
            branches = [branch.name for branch in islice(repository.get_branches(), 200)]
        return tags + branches


def _message(exc: GithubException) -> str:
    data = exc.data
    if isinstance(data, dict):
        return str(data.get("message") or data)[:300]
    return str(data)[:300]


def _rate_limit_hint(exc: GithubException) -> str:
    headers = {k.lower(): v for k, v in (exc.headers or {}).items()}
    reset = headers.get("x-ratelimit-reset", "")
    if headers.get("x-ratelimit-remaining") == "0" and reset.isdigit():
        at = datetime.fromtimestamp(int(reset), UTC)
        return f"the token's API quota is used up until {at:%Y-%m-%d %H:%M:%S} UTC; try again after that."
    if "retry-after" in headers:
        return f"GitHub asked to wait {headers['retry-after']} s (secondary rate limit); try again later."
    return f"{_message(exc)}; try again later."
