"""Errors a person must act on: each is one line that says what is wrong and how to fix it."""

import re


class SetupError(Exception):
    """The run cannot start: bad input, a missing secret, an unreachable or wrong database."""


# user:password@ in a URL, and password=... in a key/value connection string.
_URL_PASSWORD = re.compile(r"(://[^:/@\s]*:)[^@\s]*@")
_KV_PASSWORD = re.compile(r"(password\s*=\s*)('[^']*'|\S+)", re.IGNORECASE)


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Removes passwords and the given secret values from text meant for a person."""
    text = _URL_PASSWORD.sub(r"\1***@", text)
    text = _KV_PASSWORD.sub(r"\1***", text)
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text
