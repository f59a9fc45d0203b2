"""Small pure parts: redaction, the simple-API parser, validators, the audit chain."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.db import connection

from releases.redaction import redact, register_secret
from releases.steps.build_env import build_requirements
from releases.validators import clean_ref, clean_version


@pytest.mark.parametrize(
    "token",
    [
        # Assembled at run time: the shapes of real tokens, never a token-shaped literal.
        "-".join(["pypi", "AgEIcHlwaS5vcmc" + "Q1w2E3r4T5y6" * 6]),
        "_".join(["ghp", "a1B2c3D4e5F6" * 3]),
        "_".join(["github", "pat", "11ABCDEFG" + "0123456789" * 2, "abcdefghij" * 3]),
        "_".join(["ghs", "Z" * 36]),
        "_".join(["gho", "Q9" * 18]),
        "_".join(["ghu", "k" * 36]),
        "_".join(["ghr", "0aZ" * 12]),
    ],
)
def test_anything_shaped_like_a_token_is_redacted(token):
    assert token not in redact(f"Authorization: {token} and more")
    assert "[redacted]" in redact(token)


def test_a_registered_secret_is_redacted_whatever_its_shape():
    register_secret("hunter2-but-longer")
    assert redact("password was hunter2-but-longer!") == "password was [redacted]!"


def test_credentials_in_urls_are_redacted():
    assert redact("https://user:s3cret@example.org/simple/") == "https://[redacted]@example.org/simple/"


def test_a_long_text_is_redacted_like_each_of_its_lines():
    # A job's log is redacted a chunk of lines at a time.
    token = "_".join(["ghp", "a1B2c3D4e5F6" * 3])
    lines = [f"line {n} https://ci:pw{n}@example.org/ and {token if n % 3 else 'nothing'}" for n in range(50)]
    assert redact("\n".join(lines)).split("\n") == [redact(line) for line in lines]
    assert "[redacted]" in redact(lines[1]) and token not in redact("\n".join(lines))


@pytest.mark.parametrize("version", ["v1.0", "1.0 ", "01.0", "1.0.0-rc1", ""])
def test_versions_must_be_normalized_pep440(version):
    with pytest.raises(ValidationError):
        clean_version(version)


@pytest.mark.parametrize("ref", ["v1.2.0", "main", "release/1.x", "0123abcd", "feature+x@y"])
def test_ordinary_refs_are_accepted(ref):
    assert clean_ref(ref) == ref


@pytest.mark.parametrize("ref", ["-x", "a b", "a;b", "a|b", "$(x)", "`x`", "a..b", "a\nb", "x.lock", "a/"])
def test_refs_that_a_shell_or_git_could_misread_are_refused(ref):
    with pytest.raises(ValidationError):
        clean_ref(ref)


@pytest.mark.django_db
def test_audit_events_form_a_verifiable_chain():
    from releases.models import AuditAction, AuditEvent
    from releases.services.audit import audit_record, audit_verify_chain
    from tests.support.console import ProjectFactory

    project = ProjectFactory(name="x", source="/tmp/x")
    for n in range(3):
        audit_record(actor=None, action=AuditAction.PROJECT_CHANGED, target=project, data={"n": n})
    events = list(AuditEvent.objects.order_by("id"))
    assert [e.previous_hash for e in events[1:]] == [e.hash for e in events[:-1]]
    assert audit_verify_chain() is None
    with connection.cursor() as cursor:
        # The database refuses the change (its audit triggers), unless a superuser switches them off.
        cursor.execute("SET LOCAL session_replication_role = replica")
    AuditEvent.objects.filter(pk=events[1].pk).update(data={"n": 99})
    broken = audit_verify_chain()
    assert broken is not None
    assert broken.event_id == events[1].pk


@pytest.mark.parametrize(
    ("pyproject", "expected"),
    [
        ('[build-system]\nrequires = ["setuptools>=61", "wheel"]\n', ["setuptools>=61", "wheel"]),
        ('[build-system]\nrequires = ["wheel", "setuptools >= 61"]\n', ["setuptools>=61", "wheel"]),
        ("[build-system]\nrequires = []\n", []),
        ('build-system = "setuptools"\n', None),
        ('[build-system]\nrequires = "setuptools"\n', None),
        ('[build-system]\nrequires = ["setuptools>=>61"]\n', None),
        ("[project]\nname = 'x'\n", None),
        ("not toml [", None),
    ],
)
def test_build_requirements_key_a_cached_environment_only_when_they_are_valid(tmp_path, pyproject, expected):
    (tmp_path / "pyproject.toml").write_text(pyproject)
    assert build_requirements(tmp_path) == expected


def test_a_checkout_without_pyproject_builds_in_isolation(tmp_path):
    assert build_requirements(tmp_path) is None
