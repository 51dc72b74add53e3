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


def describe(violation: dict) -> str:
    """`object: problem (other=values)` for a violation row."""
    rest = {k: v for k, v in violation.items() if k not in ("object", "problem")}
    text = f"{violation.get('object', '?')}: {violation.get('problem', 'violation')}"
    if rest:
        text += " (" + ", ".join(f"{k}={v}" for k, v in rest.items()) + ")"
    return text
