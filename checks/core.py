"""A check is a query that returns violations: empty means healthy.

Each check has a name, a one-line description and a remediation; its verdict carries the
rows at fault, each naming the exact object or record. Tests fail with verdict.message(),
and the HTML report shows that same text, so what a person reads is what the test judged.
"""

from dataclasses import dataclass, field

MAX_SHOWN = 25


@dataclass(frozen=True)
class Check:
    name: str
    description: str
    remediation: str

    def verdict(self, subject: str, violations: list[dict], **facts) -> "Verdict":
        return Verdict(self, subject, list(violations), facts)

    def blocked(self, subject: str, reason: str) -> "Verdict":
        """The check cannot run because something it stands on is absent, and another test
        reports that absence: one clear failure there, not a cascade here."""
        return Verdict(self, subject, [], {}, blocked=reason)


@dataclass
class Verdict:
    check: Check
    subject: str
    violations: list[dict]
    facts: dict = field(default_factory=dict)  # measurements worth reporting even when healthy
    blocked: str | None = None

    @property
    def ok(self) -> bool:
        return not self.violations

    def record(self) -> dict:
        """The verdict as plain data (JSON-ready): what the report, the JSON summary and the
        history are built from. Every violation carries its stable key."""
        return {"check": self.check.name, "subject": self.subject, "description": self.check.description,
                "remediation": self.check.remediation,
                "status": "blocked" if self.blocked else "ok" if self.ok else "failed",
                "blocked": self.blocked,
                "violations": [{"key": finding_key(self.check, v), **v} for v in self.violations],
                "accepted": [], "facts": self.facts}

    def message(self) -> str:
        head = f"{self.check.name}[{self.subject}]: {self.check.description}"
        if self.ok:
            return f"{head}: ok"
        lines = [f"{head}: {len(self.violations)} violation(s)"]
        lines += [f"  - {describe(v)}" for v in self.violations[:MAX_SHOWN]]
        if len(self.violations) > MAX_SHOWN:
            lines.append(f"  ... and {len(self.violations) - MAX_SHOWN} more")
        lines.append(f"  fix: {self.check.remediation}")
        return "\n".join(lines)


def finding_key(check: Check, violation: dict) -> str:
    """A stable name for one finding, `check:object` (like splinter's cache_key), so that a
    team can accept exactly this finding and nothing else."""
    return violation.get("key") or f"{check.name}:{violation.get('object', '?')}"


def describe(violation: dict) -> str:
    """`object: problem (other=values)` for a violation row."""
    rest = {k: v for k, v in violation.items() if k not in ("object", "problem", "key")}
    text = f"{violation.get('object', '?')}: {violation.get('problem', 'violation')}"
    if rest:
        text += " (" + ", ".join(f"{k}={v}" for k, v in rest.items()) + ")"
    return text
