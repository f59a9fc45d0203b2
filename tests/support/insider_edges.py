"""What the insider tests of requests, pages and webhooks share (parts 5-9
of tests/test_four_eyes_insider.py): every URL pattern of the console filled
in with real rows, and GitHub webhook deliveries signed and shaped as
GitHub sends them."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, resolve, reverse

WEBHOOK_SECRET = "insider-edges webhook secret"

# Reachable without a role, each for a reason of its own. Everything else
# must answer 403 or send the visitor to sign in.
NO_ROLE_NEEDED = {
    # Signing in and out, and a person's own password (Django's auth views).
    "login": "signing in",
    "logout": "signing out",
    "password_change": "one's own password, once signed in",
    "password_change_done": "one's own password, once signed in",
    "password_reset": "a forgotten password, by mail",
    "password_reset_done": "a forgotten password, by mail",
    "password_reset_confirm": "a forgotten password, by mail",
    "password_reset_complete": "a forgotten password, by mail",
    "admin:login": "signing in to the admin",
    "admin:logout": "signing out of the admin",
    # Health, for the load balancer.
    "healthz": "health",
    # Machines, each with a proof of its own instead of a session.
    "releases:github_webhook": "signed with the project's webhook secret",
    "releases:handout_files": "a signed single-use link for the project's workflow",
    "releases:handout_file": "a signed single-use link for the project's workflow",
}


@dataclass(frozen=True)
class Route:
    name: str  # namespaced, "" when the pattern has none
    pattern: str  # the full pattern, for messages
    url: str


_ROUTE_PARAMETER = re.compile(r"<(?:\w+:)?(\w+)>")
_REGEX_GROUP = re.compile(r"\(\?P<(\w+)>[^)]*\)")


def _filled(pattern: str, values: dict[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in values:
            raise KeyError(f"the URL walk has no value for {key!r} (in {pattern!r}): add one to its values")
        return values[key]

    text = _REGEX_GROUP.sub(value, pattern)
    text = _ROUTE_PARAMETER.sub(value, text)
    return text.replace("^", "").replace("$", "").replace("\\", "")


def _walk(patterns: list[URLPattern | URLResolver], prefix: str, namespace: str) -> Iterator[tuple[str, str]]:
    for entry in patterns:
        if isinstance(entry, URLResolver):
            inner = namespace
            if entry.namespace:
                inner = f"{namespace}:{entry.namespace}" if namespace else entry.namespace
            yield from _walk(entry.url_patterns, prefix + str(entry.pattern), inner)
        else:
            name = entry.name or ""
            qualified = f"{namespace}:{name}" if namespace and name else name
            yield qualified, prefix + str(entry.pattern)


def insider_every_route(values: dict[str, str]) -> list[Route]:
    """Every URL pattern the console serves, filled in with ``values``; each
    filled URL is checked to resolve back to its own pattern."""
    routes = []
    for name, pattern in _walk(get_resolver().url_patterns, "", ""):
        url = "/" + _filled(pattern, values)
        match = resolve(url)
        if name:
            assert match.view_name == name, f"{url} resolves to {match.view_name}, not {name}"
        routes.append(Route(name=name, pattern=pattern, url=url))
    return routes


def insider_sends_to_sign_in(response: Any) -> bool:
    if response.status_code != 302:
        return False
    location = response["Location"].split("?", 1)[0]
    return location in (reverse("login"), reverse("admin:login"))


# -- GitHub deliveries --------------------------------------------------------


def insider_sign(body: bytes, secret: str = WEBHOOK_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def insider_deliver(
    client: Client, project_name: str, event: str, payload: dict[str, Any], *, address: str = "192.0.2.10"
) -> Any:
    """POST one delivery as GitHub does: JSON, signed, with a delivery id."""
    body = json.dumps(payload).encode()
    headers = {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": str(uuid.uuid4()),
        "X-Hub-Signature-256": insider_sign(body),
        "User-Agent": "GitHub-Hookshot/044aadd",
    }
    return client.post(
        reverse("releases:github_webhook", args=[project_name]),
        data=body,
        content_type="application/json",
        headers=headers,
        REMOTE_ADDR=address,
    )


def insider_release_event(tag: str, repository: str) -> dict[str, Any]:
    """GitHub's documented ``release`` payload (published)."""
    owner, name = repository.split("/")
    return {
        "action": "published",
        "release": {
            "id": 1,
            "tag_name": tag,
            "target_commitish": "main",
            "name": tag,
            "draft": False,
            "prerelease": False,
            "html_url": f"https://github.com/{repository}/releases/tag/{tag}",
            "author": {"login": "octocat", "id": 1, "type": "User"},
            "assets": [],
        },
        "repository": {"id": 1296269, "name": name, "full_name": repository, "owner": {"login": owner}},
        "sender": {"login": "octocat", "id": 1, "type": "User"},
    }
