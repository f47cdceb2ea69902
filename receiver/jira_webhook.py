"""JIRA's webhook: a ticket's status change, shown on its incident.

JIRA Cloud signs the body (`X-Hub-Signature: sha256=<hmac>`) with the shared secret;
Data Center cannot sign, so there the secret travels as `?secret=` in the webhook URL.
"""

import hashlib
import hmac
import json
import logging

from aiohttp import web

from .appkeys import CLOCK, CONFIG, DB
from .db import EventKind
from .errors import Invalid

log = logging.getLogger(__name__)


def _authentic(request: web.Request, body: bytes) -> bool:
    jira = request.app[CONFIG].jira
    if jira is None or jira.webhook_secret is None:
        return False
    secret = jira.webhook_secret.reveal().encode()
    signature = request.headers.get("X-Hub-Signature", "")
    if signature:
        expected = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(signature.encode(), expected.encode())
    return hmac.compare_digest(request.query.get("secret", "").encode(), secret)


async def receive(request: web.Request) -> web.Response:
    body = await request.read()
    if not _authentic(request, body):
        raise web.HTTPUnauthorized(text="the JIRA webhook secret does not match")
    try:
        document = json.loads(body)
        key = document["issue"]["key"]
        status = document["issue"]["fields"]["status"]["name"]
    except (ValueError, KeyError, TypeError):
        raise Invalid("body", "expected issue.key and issue.fields.status.name") from None
    if not isinstance(key, str) or not isinstance(status, str):
        raise Invalid("issue.key and status", "expected strings")
    now = request.app[CLOCK]()
    async with request.app[DB].transaction() as tx:
        incidents = await tx.set_ticket_status(key, status)
        for incident in incidents:
            await tx.append_event(incident, now, EventKind.TICKET_STATUS,
                                  f"{key} is now {status}")
    log.info("ticket %s is now %s (%d incident(s))", key, status, len(incidents))
    return web.json_response({"status": "ok", "incidents": len(incidents)})
