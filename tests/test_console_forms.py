"""What people type into the console, and the words they get back."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from releases.models import Release
from tests.support.console import EnvironmentFactory, ProjectFactory, ReleaseFactory, person_with_role

pytestmark = pytest.mark.django_db


@pytest.fixture
def releaser_client() -> Client:
    ProjectFactory(name="sample-pkg")
    client = Client()
    client.force_login(person_with_role("releaser"))
    return client


def create(client: Client, version: str, ref: str):
    return client.post(reverse("releases:release_create", args=["sample-pkg"]), {"version": version, "ref": ref})


@pytest.mark.parametrize(
    ("version", "ref", "message"),
    [
        ("", "v1.0.0", "Enter the version to release, for example 1.4.0."),
        ("1.0.0", "", "Enter the git tag, branch or commit to build from"),
        ("banana", "v1.0.0", "is not a PEP 440 version (for example 1.4.0 or 2.0.0rc1)."),
        ("v1.0.0", "v1.0.0", "is not normalized: write it as &#x27;1.0.0&#x27;."),
        ("1.0.0", "--upload-pack=evil", "is not a usable git ref"),
        ("1.0.0", "main..other", "is not a usable git ref"),
    ],
)
def test_bad_release_input_is_explained_next_to_the_field(releaser_client, version, ref, message):
    response = create(releaser_client, version, ref)
    assert response.status_code == 400
    body = response.content.decode()
    assert message in body
    assert 'aria-invalid="true"' in body
    assert not Release.objects.exists()


def test_an_existing_version_is_refused_in_words(releaser_client):
    ReleaseFactory(project__name="other", version="2.0.0")
    assert create(releaser_client, "2.0.0", "v2.0.0").status_code == 302
    response = create(releaser_client, "2.0.0", "v2.0.0")
    assert response.status_code == 400
    assert (
        "sample-pkg 2.0.0 already exists; a version is built once. Choose a new version." in response.content.decode()
    )
    assert Release.objects.filter(project__name="sample-pkg").count() == 1


def test_history_filters_with_dates_the_wrong_way_round_say_so(releaser_client):
    EnvironmentFactory(name="test-pypi")
    response = releaser_client.get(reverse("releases:history"), {"date_from": "2026-02-01", "date_to": "2026-01-01"})
    assert response.status_code == 400
    assert "The start date is after the end date" in response.content.decode()


def test_history_with_an_unknown_project_says_so(releaser_client):
    response = releaser_client.get(reverse("releases:history"), {"project": "nope"})
    assert response.status_code == 400
    assert "Select a valid choice" in response.content.decode()
