"""The address a request came from, for throttling, audit events and mails.

REMOTE_ADDR unless settings name a proxy header. Behind reverse proxies
that each append the address they saw to that header (X-Forwarded-For),
the right-most CLIENT_ADDRESS_PROXIES entries were written by proxies we
run and the one they name is the client; everything to its left came from
the client and may be forged. (This is Werkzeug ProxyFix's ``x_for``
rule. django-ipware counts proxies inside the header and, without that
count, prefers the first public address, which a client can write.)
"""

from __future__ import annotations

import ipaddress
import logging

from django.conf import settings
from django.http import HttpRequest

logger = logging.getLogger(__name__)


def client_address(request: HttpRequest) -> str:
    """The client's IP address as text; "" when the request has none."""
    remote = str(request.META.get("REMOTE_ADDR", "") or "")
    header = settings.CLIENT_ADDRESS_HEADER
    if not header:
        return remote
    raw = str(request.META.get("HTTP_" + header.upper().replace("-", "_"), "") or "")
    hops = [hop.strip() for hop in raw.split(",") if hop.strip()]
    proxies = settings.CLIENT_ADDRESS_PROXIES
    if len(hops) < proxies:
        # Fewer hops than proxies: the request did not come through them all.
        return remote
    candidate = hops[-proxies]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        logger.warning("%s entry %r is not an IP address; using REMOTE_ADDR", header, candidate[:60])
        return remote
