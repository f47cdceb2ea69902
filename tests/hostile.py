"""What every error shown to an engineer must not look like."""

import re

# A Python exception or warning class name, such as OverflowError or ClientConnectorError.
_PYTHON_NAME = re.compile(r"\b[A-Z][A-Za-z]*(?:Error|Exception|Warning)\b|Traceback")


def assert_plain(message: str | None) -> None:
    """The message says what went wrong in words, not as a Python exception."""
    assert message, "an error without a message"
    assert not _PYTHON_NAME.search(message), message
    assert "unexpected error" not in message, message
