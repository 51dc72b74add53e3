"""Errors a person must act on: each is one line that says what is wrong and how to fix it."""


class SetupError(Exception):
    """The run cannot start: bad input, a missing secret, an unreachable or wrong database."""


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Replaces every secret value (URLs, passwords, keys) found in text meant for a person."""
    for secret in sorted(secrets, key=len, reverse=True):
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text
