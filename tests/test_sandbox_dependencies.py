"""Verify without dependency confusion: the release's own wheel is the one
the console built (downloaded from the environment's index, its sha256
required), and its dependencies come from the fallback index only. A name
planted on the environment's index, however high its version, is never
installed: the verify installs what a user who trusts only the fallback
index for dependencies would get.

Real devpi indexes (the environment's and the fallback), a real worker,
the real sandbox.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
import zipfile
from pathlib import Path

from releases.models import Deployment, Job, JobLogLine
from releases.services.deployments import deployment_request
from releases.services.projects import project_create
from releases.services.releases import release_create
from tests.conftest import index_environment, wait_built, wait_final
from tests.support.devpi import DevpiServer
from tests.support.sample import SampleRepo


def hand_made_wheel(folder: Path, name: str, version: str, origin: str) -> Path:
    """A pure-Python wheel whose module says where it came from."""
    module = name.replace("-", "_")
    info = f"{module}-{version}.dist-info"
    files = {
        f"{module}/__init__.py": f"ORIGIN = {origin!r}\n".encode(),
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join(
        f"{path},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},{len(data)}\n"
        for path, data in files.items()
    )
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / f"{module}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, data in files.items():
            archive.writestr(path, data)
        archive.writestr(f"{info}/RECORD", record + f"{info}/RECORD,,\n")
    return wheel


def verify_log(deployment: Deployment) -> list[str]:
    job = Job.objects.get(deployment=deployment, kind=Job.Kind.VERIFY)
    return list(JobLogLine.objects.filter(job=job).order_by("number").values_list("text", flat=True))


def test_names_planted_on_the_environment_s_index_are_never_installed(
    worker, devpi: DevpiServer, tmp_path: Path
) -> None:
    suffix = uuid.uuid4().hex[:8]
    environment_index, fallback = devpi.new_index(), devpi.new_index()
    environment = index_environment(
        environment_index, f"confusion-{suffix}", "Confusion", fallback_index_url=fallback.simple_url
    )
    helper = f"helper-{suffix}"
    repo = SampleRepo(tmp_path / "victim", name=f"victim-{suffix}")
    repo.commit_version("1.0.0", tag="v1.0.0", dependencies=[helper], body="import helper_" + suffix + "\n")
    project = project_create(name=repo.name, source=str(repo.path), actor=None)
    # The dependency, where dependencies come from; and someone's higher
    # versions of it, and of the release itself, on the environment's index.
    devpi.upload_raw(fallback, hand_made_wheel(tmp_path / "wheels", helper, "1.0", "fallback"))
    devpi.upload_raw(environment_index, hand_made_wheel(tmp_path / "planted", helper, "9.0", "planted"))
    devpi.upload_raw(environment_index, hand_made_wheel(tmp_path / "planted", repo.name, "9.9.9", "planted"))

    release = wait_built(release_create(project=project, version="1.0.0", ref="v1.0.0", actor=None))
    deployment = wait_final(deployment_request(release=release, environment=environment, actor=None))

    assert deployment.outcome == Deployment.Outcome.SUCCEEDED, deployment.reason
    lines = verify_log(deployment)
    installed = [line.strip() for line in lines if line.strip().startswith("+ ")]
    wheel = release.artifacts.get(kind="wheel").filename
    assert installed == [f"+ {helper}==1.0", f"+ {repo.name}==1.0.0 (from file://{_private_wheel(lines, wheel)})"]
    assert f"--index-url {fallback.simple_url}" in "\n".join(lines)
    assert f"imported victim_{suffix}" in lines


def _private_wheel(lines: list[str], wheel: str) -> str:
    """Where the verify kept the wheel it downloaded and checked."""
    line = next(line for line in lines if "(from file://" in line and wheel in line)
    return line.split("(from file://", 1)[1].rstrip(")")


def test_a_dependency_that_only_the_environment_s_index_has_fails_the_verify_by_name(
    worker, devpi: DevpiServer, tmp_path: Path
) -> None:
    suffix = uuid.uuid4().hex[:8]
    environment_index, fallback = devpi.new_index(), devpi.new_index()
    environment = index_environment(
        environment_index, f"planted-{suffix}", "Planted", fallback_index_url=fallback.simple_url
    )
    ghost = f"ghost-{suffix}"
    repo = SampleRepo(tmp_path / "victim", name=f"victim-{suffix}")
    repo.commit_version("1.0.0", tag="v1.0.0", dependencies=[ghost])
    project = project_create(name=repo.name, source=str(repo.path), actor=None)
    # Registered by anyone on the environment's index (Test PyPI takes any name).
    devpi.upload_raw(environment_index, hand_made_wheel(tmp_path / "planted", ghost, "1.0", "planted"))

    release = wait_built(release_create(project=project, version="1.0.0", ref="v1.0.0", actor=None))
    deployment = wait_final(deployment_request(release=release, environment=environment, actor=None))

    assert deployment.outcome == Deployment.Outcome.FAILED
    assert f"did not install with its dependencies from {fallback.simple_url}" in deployment.reason
    assert f"Because {ghost} was not found in the package registry" in deployment.reason
    lines = verify_log(deployment)
    assert not any(line.strip().startswith(f"+ {ghost}") for line in lines)
    # The sandboxed attempts asked the fallback index only.
    asked = [line for line in lines if line.startswith("sandbox network: allowed GET")]
    assert asked and all(fallback.simple_url in line for line in asked), asked
