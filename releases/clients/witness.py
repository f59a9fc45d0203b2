"""The audit witness: an HTTP service that keeps copies of audit checkpoints.

The console POSTs each checkpoint, as the JSON object of its line, to the
witness URL; any 2xx answer means it is kept. The witness is the console's
own protocol (docs/audit.md, "Where checkpoints go").
"""

from __future__ import annotations

from typing import Any

from releases.clients.http import request
from releases.errors import StepFailed


def witness_send(url: str, checkpoint: dict[str, Any], *, token: str = "") -> None:
    """Hand one checkpoint to the witness; TransientError or StepFailed when it is not kept."""
    # Reference: docs/audit.md, "Where checkpoints go" (POST, application/json, 2xx kept).
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = request("POST", url, what=f"the audit witness at {url}", json=checkpoint, headers=headers)
    if not 200 <= response.status_code < 300:
        raise StepFailed(f"the audit witness at {url} refused the checkpoint: {response.status_code}")
