"""Appwrite webhook deliveries for storage file events: verify, then hand to a service."""

import base64
import hashlib
import hmac
import json
import re

from django.conf import settings
from django.http import HttpResponse, HttpResponseBadRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from catalog import services
from catalog.exceptions import StorageError

# `buckets.<bucketId>.files.<fileId>.<action>`: the one concrete event among the wildcard
# variants Appwrite lists in X-Appwrite-Webhook-Events.
FILE_EVENT = re.compile(
    r"buckets\.(?P<bucket>[A-Za-z0-9][\w.-]*?)\.files\.(?P<file>[A-Za-z0-9][\w.-]*?)"
    r"\.(?P<action>create|update|delete)"
)


def signature_valid(request) -> bool:
    """base64(HMAC-SHA1(secret, registered URL + raw body)) equals the header (constant time).

    The URL is APPWRITE_WEBHOOK_URL exactly as registered in the console (scheme, host, path,
    query); behind a proxy the URL Django sees may differ, so set it.
    """
    secret = settings.APPWRITE["WEBHOOK_SECRET"]
    if not secret:
        return False
    url = settings.APPWRITE["WEBHOOK_URL"] or request.build_absolute_uri()
    digest = hmac.new(secret.encode(), url.encode() + request.body, hashlib.sha1).digest()
    expected = base64.b64encode(digest).decode()
    return hmac.compare_digest(expected, request.headers.get("X-Appwrite-Webhook-Signature", ""))


def file_event(header: str) -> re.Match | None:
    events = (FILE_EVENT.fullmatch(event) for event in header.split(","))
    return next((match for match in events if match), None)


@csrf_exempt
@require_POST
def appwrite_webhook(request):
    """Receive `buckets.<id>.files.*.create|update|delete` deliveries (see README)."""
    if not request.headers.get("X-Appwrite-Webhook-Signature"):
        return HttpResponse("Missing X-Appwrite-Webhook-Signature.", status=401)
    if not signature_valid(request):
        return HttpResponse("Bad signature: check APPWRITE_WEBHOOK_SECRET and "
                            "APPWRITE_WEBHOOK_URL match the webhook in Appwrite.", status=403)
    event = file_event(request.headers.get("X-Appwrite-Webhook-Events", ""))
    try:
        file = json.loads(request.body)
    except ValueError:
        return HttpResponseBadRequest("The body is not JSON.")
    if event is None or not isinstance(file, dict) or file.get("$id") != event["file"]:
        return JsonResponse({"outcome": "ignored: not a storage file event"})
    try:
        outcome = services.appwrite_file_event_handle(
            action=event["action"], bucket_id=event["bucket"], file=file)
    except StorageError as exc:  # Appwrite retries a failed delivery; the file is looked up then.
        return HttpResponse(f"Could not look the file up in Appwrite: {exc}", status=503)
    return JsonResponse({"outcome": outcome})
