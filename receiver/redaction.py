"""The receiver's secrets, for masking in anything stored, logged or shown."""

from collections.abc import Iterable

from fleet_common.redact import basic_credentials, redact

from .config import JiraConfig, ReceiverConfig


def jira_secrets(jira: JiraConfig) -> list[str]:
    found = [s.reveal() for s in (jira.api_token, jira.personal_access_token,
                                  jira.webhook_secret) if s is not None]
    if jira.username and jira.api_token is not None:
        found.append(basic_credentials(jira.username, jira.api_token.reveal()))
    return found


def configured_secrets(config: ReceiverConfig) -> list[str]:
    # Password hashes are no credentials, but nothing should show them either.
    found = [config.bearer_token.reveal(), *(u.password_hash.reveal() for u in config.users)]
    return found + (jira_secrets(config.jira) if config.jira is not None else [])


def redacted(text: str, config: ReceiverConfig) -> str:
    return redact(text, configured_secrets(config))


SCAN = 65536  # characters masked before an excerpt is cut: bounded work


def excerpt(text: str, secrets: Iterable[str], limit: int) -> str:
    """The start of `text`, masked before it is cut: half a secret is still a leak."""
    masked = redact(text[:SCAN], secrets)
    if len(text) > SCAN:
        # The scan's own cut may split a secret: its last stretch is never shown.
        masked = masked[:-1024]
    return masked[:limit]
