"""The GitHub webhook endpoint: answers at once, the work goes to the queue."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from releases.client_address import client_address
from releases.services.webhooks import Request, webhook_receive


@csrf_exempt  # GitHub cannot send a CSRF token; the HMAC signature stands in for it.
@require_POST
def github_webhook(request: HttpRequest, project_name: str) -> JsonResponse:
    limit = settings.WEBHOOK_MAX_BYTES
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    body = b"" if declared > limit else request.read(limit + 1)
    too_large = declared > limit or len(body) > limit
    delivery = webhook_receive(
        Request(
            project_name=project_name,
            headers=dict(request.headers),
            content_type=request.content_type or "",
            body=b"" if too_large else body,
            body_size=max(declared, len(body)),
            too_large=too_large,
            address=client_address(request),
        )
    )
    # "queued" while its job has not run; how it ended otherwise.
    answer = {"outcome": delivery.outcome or delivery.state, "detail": delivery.reason, "delivery": delivery.pk}
    return JsonResponse(answer, status=delivery.status_code)
