"""Artifact storage, on a local folder and on a real S3 API server (moto's,
on loopback): written once, never overwritten, checked by sha256 whenever
a copy is taken out."""

from __future__ import annotations

import hashlib
import io
import os
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.core.files.storage import storages
from django.views.debug import SafeExceptionReporterFilter

from console.artifact_storage import artifact_storage
from console.env import ImproperEnvironment
from releases.clients import artifacts
from releases.clients.artifacts import ArtifactConflict, ArtifactMissing, ArtifactTampered, WheelUnreadable
from releases.errors import TransientError
from tests.support.devpi import free_port
from tests.support.s3 import SECRET_ACCESS_KEY, S3Server
from tests.test_settings import run_manage

NAME = "sample-pkg/1.0.0/sample_pkg-1.0.0.tar.gz"
WHEEL = "sample-pkg/1.0.0/sample_pkg-1.0.0-py3-none-any.whl"


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    server = S3Server()
    server.start()
    yield server
    server.stop()


@dataclass
class Store:
    """The artifact storage a test runs against, and a way around the console to it."""

    kind: str
    root: Path
    bucket: str = ""
    server: S3Server | None = None

    def write_behind_the_consoles_back(self, name: str, data: bytes) -> None:
        """What someone with the folder or the bucket's credentials could do."""
        if self.server is not None:
            self.server.client().put_object(Bucket=self.bucket, Key=name, Body=data)
            return
        path = self.root / name
        path.chmod(0o644)
        path.write_bytes(data)

    def holds(self, name: str) -> bytes:
        if self.server is not None:
            return bytes(self.server.client().get_object(Bucket=self.bucket, Key=name)["Body"].read())
        return (self.root / name).read_bytes()


def _configure(settings: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, env: dict[str, str]) -> None:
    """Point STORAGES["artifacts"] where ``env`` says, the way settings.py does."""
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings.STORAGES = {**settings.STORAGES, "artifacts": artifact_storage(tmp_path)}


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, settings: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Store:
    if request.param == "s3":
        server: S3Server = request.getfixturevalue("s3_server")
        bucket = server.new_bucket()
        _configure(settings, monkeypatch, tmp_path, server.environment(bucket))
        return Store("s3", tmp_path, bucket, server)
    root = tmp_path / "artifacts"
    _configure(settings, monkeypatch, tmp_path, {"ARTIFACT_STORAGE": "local", "ARTIFACT_ROOT": str(root)})
    return Store("local", root)


@pytest.fixture
def s3_store(s3_server: S3Server, settings: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Store:
    bucket = s3_server.new_bucket()
    _configure(settings, monkeypatch, tmp_path, s3_server.environment(bucket))
    return Store("s3", tmp_path, bucket, s3_server)


def built(tmp_path: Path, data: bytes, filename: str = "sample_pkg-1.0.0.tar.gz") -> Path:
    folder = tmp_path / "build" / hashlib.sha256(data).hexdigest()[:12]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / filename
    path.write_bytes(data)
    return path


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def job_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "job"
    folder.mkdir(exist_ok=True)
    return folder


def test_a_stored_file_comes_back_byte_for_byte_with_its_size_and_sha256(store: Store, tmp_path: Path) -> None:
    data = os.urandom(300_000)
    stored = artifacts.store(built(tmp_path, data), NAME)
    assert stored == artifacts.StoredArtifact(NAME, len(data), sha256(data), created=True)
    assert store.holds(NAME) == data

    destination = job_folder(tmp_path) / "sample_pkg-1.0.0.tar.gz"
    fetched = artifacts.fetch(NAME, destination, sha256=stored.sha256, size=stored.size)
    assert fetched == artifacts.FetchedArtifact(NAME, destination, len(data), sha256(data))
    assert destination.read_bytes() == data


def test_storing_the_same_bytes_again_is_accepted_as_already_stored(store: Store, tmp_path: Path) -> None:
    data = b"the same sdist, built again from the same commit"
    artifacts.store(built(tmp_path, data), NAME)
    again = artifacts.store(built(tmp_path / "retry", data), NAME)
    assert again == artifacts.StoredArtifact(NAME, len(data), sha256(data), created=False)
    assert store.holds(NAME) == data


def test_other_bytes_under_a_stored_name_are_refused_and_the_first_file_is_kept(store: Store, tmp_path: Path) -> None:
    first, second = b"first build", b"a different build"
    artifacts.store(built(tmp_path, first), NAME)
    with pytest.raises(ArtifactConflict) as refused:
        artifacts.store(built(tmp_path, second), NAME)
    message = str(refused.value)
    assert "already holds a different sample_pkg-1.0.0.tar.gz" in message
    assert sha256(first) in message
    assert sha256(second) in message
    assert "never overwritten" in message
    assert store.holds(NAME) == first


@pytest.mark.parametrize("replacement", ["same size", "longer"])
def test_a_file_tampered_with_in_storage_is_refused_on_fetch_and_nothing_is_left(
    store: Store, tmp_path: Path, replacement: str
) -> None:
    data = b"the wheel that was built and approved" * 100
    stored = artifacts.store(built(tmp_path, data), NAME)
    tampered = bytes(reversed(data)) if replacement == "same size" else data + b"import os; os.system('...')"
    store.write_behind_the_consoles_back(NAME, tampered)
    folder = job_folder(tmp_path)
    destination = folder / "sample_pkg-1.0.0.tar.gz"
    destination.write_bytes(data)  # a good copy left by an earlier attempt must not be sent either

    with pytest.raises(ArtifactTampered) as refused:
        artifacts.fetch(NAME, destination, sha256=stored.sha256, size=stored.size)

    message = str(refused.value)
    assert "The stored sample_pkg-1.0.0.tar.gz is not the file that was built" in message
    assert f"recorded sha256 {sha256(data)} ({len(data)} bytes)" in message
    assert f"artifact storage holds sha256 {sha256(tampered)} ({len(tampered)} bytes)" in message
    assert list(folder.iterdir()) == []


def test_a_missing_file_is_named_on_fetch_and_nothing_is_left(store: Store, tmp_path: Path) -> None:
    folder = job_folder(tmp_path)
    with pytest.raises(ArtifactMissing) as refused:
        artifacts.fetch(NAME, folder / "sample_pkg-1.0.0.tar.gz", sha256="0" * 64, size=10)
    assert str(refused.value) == f"sample_pkg-1.0.0.tar.gz is not in artifact storage (looked for {NAME})."
    assert list(folder.iterdir()) == []


def test_hosts_storing_different_bytes_at_once_leave_exactly_one_file(store: Store, tmp_path: Path) -> None:
    contenders = [built(tmp_path, f"build from host {n}".encode() * 1000) for n in range(6)]
    start = threading.Barrier(len(contenders))
    outcomes: dict[int, str] = {}

    def contend(n: int) -> None:
        start.wait()
        try:
            artifacts.store(contenders[n], NAME)
            outcomes[n] = "stored"
        except ArtifactConflict:
            outcomes[n] = "refused"

    threads = [threading.Thread(target=contend, args=(n,)) for n in range(len(contenders))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    winners = [n for n, outcome in outcomes.items() if outcome == "stored"]
    assert len(winners) == 1, outcomes
    assert sorted(outcomes.values()).count("refused") == len(contenders) - 1
    assert store.holds(NAME) == contenders[winners[0]].read_bytes()


@pytest.mark.parametrize("other_host_stores", ["other bytes", "the same bytes"])
def test_a_write_landing_between_the_check_and_the_put_is_stopped_by_the_object_store(
    s3_store: Store, tmp_path: Path, other_host_stores: str
) -> None:
    """The console looks first, then puts with If-None-Match: *. Another host
    writes in between (just before the put leaves): S3 refuses the put with
    412, and the console compares instead of overwriting."""
    assert s3_store.server is not None
    ours = b"this host's build"
    theirs = b"another host's build" if other_host_stores == "other bytes" else ours
    client = storages["artifacts"].connection.meta.client  # type: ignore[attr-defined]

    def other_host_writes(**_: object) -> None:
        s3_store.write_behind_the_consoles_back(NAME, theirs)

    client.meta.events.register_first("before-call.s3.PutObject", other_host_writes)
    try:
        if other_host_stores == "other bytes":
            with pytest.raises(ArtifactConflict):
                artifacts.store(built(tmp_path, ours), NAME)
        else:
            assert artifacts.store(built(tmp_path, ours), NAME).created is False
    finally:
        client.meta.events.unregister("before-call.s3.PutObject", other_host_writes)
    assert s3_store.holds(NAME) == theirs


def test_an_unreachable_object_store_is_a_transient_failure(
    s3_server: S3Server, settings: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    nobody_listens = f"http://127.0.0.1:{free_port()}"
    env = s3_server.environment("artifacts", ARTIFACT_S3_ENDPOINT_URL=nobody_listens, ARTIFACT_S3_ATTEMPTS="1")
    _configure(settings, monkeypatch, tmp_path, env)
    with pytest.raises(TransientError, match="Artifact storage could not be reached"):
        artifacts.store(built(tmp_path, b"sdist"), NAME)


def test_objects_are_kept_under_the_configured_prefix(
    s3_server: S3Server, settings: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    bucket = s3_server.new_bucket()
    _configure(settings, monkeypatch, tmp_path, s3_server.environment(bucket, ARTIFACT_S3_PREFIX="/console/artifacts/"))
    data = b"sdist"
    artifacts.store(built(tmp_path, data), NAME)
    keys = [o["Key"] for o in s3_server.client().list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == [f"console/artifacts/{NAME}"]
    assert storages["artifacts"].exists(NAME)  # django-storages finds the same object
    destination = job_folder(tmp_path) / "x.tar.gz"
    artifacts.fetch(NAME, destination, sha256=sha256(data), size=len(data))
    assert destination.read_bytes() == data


def wheel_bytes(tmp_path: Path, *, payload: int = 0, metadata: bool = True) -> bytes:
    path = tmp_path / "wheel.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("sample_pkg/__init__.py", "VALUE = 1\n")
        # Random bytes, stored uncompressed: a wheel of some size, mostly data.
        archive.writestr("sample_pkg/data.bin", os.urandom(payload), compress_type=zipfile.ZIP_STORED)
        if metadata:
            archive.writestr(
                "sample_pkg-1.0.0.dist-info/METADATA",
                "Metadata-Version: 2.4\nName: sample-pkg\nVersion: 1.0.0\nRequires-Dist: requests>=2\n",
                compress_type=zipfile.ZIP_DEFLATED,
            )
        archive.writestr("sample_pkg-1.0.0.dist-info/RECORD", "")
    return path.read_bytes()


def test_a_wheels_metadata_and_members_are_read_from_storage(store: Store, tmp_path: Path) -> None:
    artifacts.store(built(tmp_path, wheel_bytes(tmp_path), "sample_pkg-1.0.0-py3-none-any.whl"), WHEEL)
    wheel = artifacts.read_wheel(WHEEL)
    assert wheel.metadata_member == "sample_pkg-1.0.0.dist-info/METADATA"
    assert b"Requires-Dist: requests>=2" in wheel.metadata
    assert "sample_pkg/__init__.py" in wheel.members


def test_reading_a_wheels_metadata_from_s3_fetches_a_small_part_of_it(s3_store: Store, tmp_path: Path) -> None:
    data = wheel_bytes(tmp_path, payload=4 << 20)
    artifacts.store(built(tmp_path, data, "sample_pkg-1.0.0-py3-none-any.whl"), WHEEL)
    client = storages["artifacts"].connection.meta.client  # type: ignore[attr-defined]
    received: list[int] = []

    def count(parsed: dict[str, Any], **_: object) -> None:
        received.append(int(parsed["ContentLength"]))

    client.meta.events.register("after-call.s3.GetObject", count)
    try:
        wheel = artifacts.read_wheel(WHEEL)
    finally:
        client.meta.events.unregister("after-call.s3.GetObject", count)
    assert b"Name: sample-pkg" in wheel.metadata
    assert len(data) > 4 << 20
    assert len(received) <= 5, received
    assert 0 < sum(received) < 64 << 10, received


def corrupt_metadata(data: bytes) -> bytes:
    """The wheel with the compressed bytes of its METADATA overwritten."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        info = archive.getinfo("sample_pkg-1.0.0.dist-info/METADATA")
    start = info.header_offset + 30 + len(info.filename)
    return data[:start] + b"\xff" * 8 + data[start + 8 :]


@pytest.mark.parametrize("what", ["no zip", "no METADATA", "corrupt METADATA"])
def test_a_stored_file_that_is_no_wheel_is_named_unreadable(store: Store, tmp_path: Path, what: str) -> None:
    data = {
        "no zip": lambda: b"not a zip at all",
        "no METADATA": lambda: wheel_bytes(tmp_path, metadata=False),
        "corrupt METADATA": lambda: corrupt_metadata(wheel_bytes(tmp_path)),
    }[what]()
    artifacts.store(built(tmp_path, data, "sample_pkg-1.0.0-py3-none-any.whl"), WHEEL)
    with pytest.raises(WheelUnreadable, match=r"sample_pkg-1\.0\.0-py3-none-any\.whl (is not a readable wheel|has no)"):
        artifacts.read_wheel(WHEEL)


def test_a_download_streams_the_stored_bytes(store: Store, tmp_path: Path) -> None:
    data = os.urandom((5 << 20) // 2)  # more than one chunk
    stored = artifacts.store(built(tmp_path, data), NAME)
    download = artifacts.open_download(NAME, sha256=stored.sha256, size=stored.size)
    assert download.size == len(data)
    assert b"".join(download.chunks) == data


@pytest.mark.parametrize("size", [(5 << 20) // 2, 4000])
def test_a_tampered_download_stops_before_its_last_chunk(store: Store, tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    stored = artifacts.store(built(tmp_path, data), NAME)
    store.write_behind_the_consoles_back(NAME, os.urandom(size))
    download = artifacts.open_download(NAME, sha256=stored.sha256, size=stored.size)
    sent = bytearray()

    def browser_reads() -> None:
        for chunk in download.chunks:
            sent.extend(chunk)

    with pytest.raises(ArtifactTampered, match=sha256(data)):
        browser_reads()
    assert len(sent) < size  # the browser sees a short, failed download
    if size < artifacts.CHUNK:
        assert sent == b""  # a small file is checked whole before any byte goes


def test_a_download_of_a_missing_or_resized_file_is_refused_before_any_byte(store: Store, tmp_path: Path) -> None:
    with pytest.raises(ArtifactMissing):
        artifacts.open_download(NAME, sha256="0" * 64, size=3)
    stored = artifacts.store(built(tmp_path, b"twelve bytes"), NAME)
    store.write_behind_the_consoles_back(NAME, b"a longer file than that")
    with pytest.raises(ArtifactTampered, match="artifact storage holds a file of 23 bytes"):
        artifacts.open_download(NAME, sha256=stored.sha256, size=stored.size)


def test_the_s3_secret_is_starred_on_error_pages(s3_store: Store, settings: Any) -> None:
    safe = SafeExceptionReporterFilter().get_safe_settings()
    options = safe["STORAGES"]["artifacts"]["OPTIONS"]
    assert options["secret_key"] == SafeExceptionReporterFilter.cleansed_substitute
    assert SECRET_ACCESS_KEY not in repr(safe)


@pytest.mark.parametrize(
    ("env", "error"),
    [
        ({"ARTIFACT_STORAGE": "s4"}, "ARTIFACT_STORAGE='s4': use one of local, s3"),
        ({"ARTIFACT_STORAGE": "s3"}, "ARTIFACT_S3_BUCKET must be set when ARTIFACT_STORAGE=s3"),
        (
            {"ARTIFACT_STORAGE": "s3", "ARTIFACT_S3_BUCKET": "b", "ARTIFACT_S3_ENDPOINT_URL": "minio:9000"},
            "ARTIFACT_S3_ENDPOINT_URL='minio:9000' is not an http or https address",
        ),
        (
            {"ARTIFACT_STORAGE": "s3", "ARTIFACT_S3_BUCKET": "b", "ARTIFACT_S3_ACCESS_KEY_ID": "AKIA"},
            "ARTIFACT_S3_ACCESS_KEY_ID and ARTIFACT_S3_SECRET_ACCESS_KEY must be set together",
        ),
        (
            {"ARTIFACT_STORAGE": "s3", "ARTIFACT_S3_BUCKET": "b", "ARTIFACT_S3_ADDRESSING_STYLE": "dns"},
            "ARTIFACT_S3_ADDRESSING_STYLE='dns': use one of auto, path, virtual",
        ),
    ],
)
def test_bad_artifact_storage_settings_are_refused_with_their_name(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, env: dict[str, str], error: str
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ImproperEnvironment) as refused:
        artifact_storage(tmp_path)
    assert str(refused.value) == error


def test_the_console_does_not_start_with_a_bad_artifact_storage_setting() -> None:
    result = run_manage({"ARTIFACT_STORAGE": "s3"}, "check")
    assert result.returncode != 0
    assert "ARTIFACT_S3_BUCKET must be set when ARTIFACT_STORAGE=s3" in result.stderr
