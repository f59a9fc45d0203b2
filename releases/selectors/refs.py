"""A project's git refs on GitHub, offered by the release form."""

from __future__ import annotations

from releases.models import Project


def github_refs(project: Project) -> list[str]:
    """The repository's tags, then its branches, as GitHub lists them.

    Kept for GITHUB_REFS_CACHE_SECONDS so that a form re-rendered while
    someone types does not ask GitHub each time. Raises StepFailed or
    TransientError (releases.errors) with a readable reason.
    """
    from django.conf import settings
    from django.core.cache import cache

    from releases.github import GitHubClient

    key = f"github-refs:{project.pk}:{project.github_repository}"
    cached = cache.get(key)
    if isinstance(cached, list):
        return cached
    client = GitHubClient(project)
    try:
        refs = client.refs()
    finally:
        client.close()
    cache.set(key, refs, settings.GITHUB_REFS_CACHE_SECONDS)
    return refs
