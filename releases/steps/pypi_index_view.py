"""What a warehouse index (PyPI, Test PyPI) says of a project before an
upload, gathered from its public APIs for ``pypi_rules``."""

from __future__ import annotations

from releases.clients import index, pypi_json
from releases.steps.pypi_rules import IndexView


def read_index(index_url: str, name: str, *, list_names: bool = True) -> IndexView:
    """Ask the index what the rules need to know:

    1. The simple API's project page: whether the project exists at all (a
       project whose releases were all deleted still has one).
    2. The JSON API beside it: releases, files with sizes, digests and upload
       times, and the accounts with a role. An index without a JSON API
       (devpi) gives none of it, and the rules that need it find nothing.
    3. For a project the index does not have, and with ``list_names``: every
       project name it lists, for the "too similar" rule. PyPI's list is
       several megabytes; it is asked for only before a project's first upload.

    Transient failures end in TransientError, refusals in StepFailed (the clients').
    """
    listed = index.fetch_project(index_url, name)
    api_url = pypi_json.json_api_url(index_url)
    published = pypi_json.fetch_project(api_url, name) if api_url else None
    exists = listed is not None or published is not None
    known = index.project_names(index_url) if list_names and not exists else None
    site = index_url.rstrip("/").removesuffix("/simple")
    return IndexView(published, project_exists=exists, known_names=known, site=site)
