"""Command-line values that cannot be right are refused before anything runs, in one line
that says what to give instead (every example it suggests is itself accepted)."""

import re
from datetime import datetime, timezone

from checks.connect.environments import Environment, read_only
from checks.connect.target import Target
from checks.errors import SetupError

_DATE_ONLY = re.compile(r"\d{4}-?\d{2}-?\d{2}(Z|[+-]\d{2}(:?\d{2})?)?")


def restore_point(text: str, now: datetime) -> datetime:
    """--restore-point: an ISO-8601 time with a time of day and a zone, not after `now`
    (the target's clock)."""
    text, now = text.strip(), now.astimezone(timezone.utc)
    if _DATE_ONLY.fullmatch(text):
        day = datetime.fromisoformat(text[:10] if "-" in text else f"{text[:4]}-{text[4:6]}-{text[6:8]}")
        raise SetupError(f"--restore-point {text!r} is a date without a time of day; give the exact time the "
                         f"target was restored to, e.g. {day:%Y-%m-%d}T00:00:00Z (UTC)")
    try:
        moment = datetime.fromisoformat(re.sub(r"[zZ]$", "+00:00", text))
    except ValueError:
        raise SetupError(f"--restore-point {text!r} is not an ISO-8601 time; e.g. {now:%Y-%m-%dT%H:00:00Z} "
                         f"(UTC)") from None
    if moment.tzinfo is None:
        raise SetupError(f"--restore-point {text!r} has no time zone; add one, e.g. {text}Z for UTC")
    if moment > now:
        raise SetupError(f"--restore-point {text!r} is in the future (the database's clock says "
                         f"{now:%Y-%m-%dT%H:%M:%SZ}); give the time the target was restored to")
    return moment


def compare_to(name: str, env: Environment, target_location: str,
               environments: dict[str, Environment]) -> tuple[Environment, str]:
    """--compare-to: another environment reached by URL, never the target itself; returns it
    (read-only, whatever the file says) and its URL."""
    if name not in environments:
        raise SetupError(f"--compare-to: unknown environment '{name}'; known: {', '.join(environments)}")
    if name == env.name:
        raise SetupError(f"--compare-to={name} names the target itself; compare with another environment "
                         f"(during a drill: --env=restore --compare-to=production)")
    if environments[name].embedded:
        raise SetupError("--compare-to needs an environment reached by URL, not the embedded reference")
    other = read_only(environments[name])
    url = other.secret("db_url")
    if Target(other, url).location == target_location:
        raise SetupError(f"--compare-to={name} points at the same database as --env={env.name} "
                         f"({target_location}); compare with another environment")
    return other, url
