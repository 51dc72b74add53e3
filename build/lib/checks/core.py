"""A check is a query that returns violations: empty means healthy.

Each check has a name, a one-line description and a remediation; its verdict carries the
rows at fault, each naming the exact object or record. Tests fail with verdict.message(),
and the report shows that same text, so what a person reads is what the test judged.

Besides violations a verdict may carry notes (what the reference Ordak chose where the
documentation is silent: shown, never failing) and accepted findings (violations a team
accepted for a while, by key, with a reason: shown as accepted until they expire).
"""

from dataclasses import dataclass, field, replace
from datetime import date, datetime

TERMINAL_SHOWN = 25  # violations printed in the terminal; the report and JUnit carry them all


@dataclass(frozen=True)
class Check:
    name: str
    description: str
    remediation: str

    def verdict(self, subject: str, violations: list[dict], notes: list[dict] = (), fix: str | None = None,
                **facts) -> "Verdict":
        """fix: this verdict's own remediation, where the right way out depends on what was
        found (a restore past the incident needs an earlier point, one short of it a later one)."""
        return Verdict(self, subject, list(violations), facts, notes=list(notes), fix=fix)

    def blocked(self, subject: str, reason: str) -> "Verdict":
        """The check cannot run because something it stands on is absent, and another test
        reports that absence: one clear failure there, not a cascade here."""
        return Verdict(self, subject, [], {}, blocked=reason)


@dataclass(frozen=True)
class Clock:
    """The reference time of a run: a restore's target time, or the database's now()."""
    at: datetime
    restore_point: bool

    @property
    def label(self) -> str:
        return "restore point" if self.restore_point else "now"


@dataclass(frozen=True)
class Acceptance:
    """A finding a team accepted, from environments.toml: `[[<env>.accepted]]`."""
    key: str
    reason: str
    until: date

    def expired(self, today: date) -> bool:
        return today > self.until


@dataclass
class Verdict:
    check: Check
    subject: str
    violations: list[dict]
    facts: dict = field(default_factory=dict)  # measurements worth reporting even when healthy
    blocked: str | None = None
    notes: list[dict] = field(default_factory=list)
    accepted: list[dict] = field(default_factory=list)
    fix: str | None = None  # overrides the check's remediation (see Check.verdict)

    @property
    def ok(self) -> bool:
        return not self.violations

    def advisory(self, why: str) -> "Verdict":
        """The same verdict with its violations turned into notes: for rules that are the
        reference's choice, not a documented fact."""
        notes = [{**v, "note": why} for v in self.violations]
        return replace(self, violations=[], notes=self.notes + notes)

    def accept(self, acceptances: list[Acceptance], today: date) -> "Verdict":
        """Moves the violations a team accepted into `accepted`; an expired acceptance leaves
        its violation failing, and says so."""
        by_key = {a.key: a for a in acceptances}
        violations, accepted = [], list(self.accepted)
        for violation in self.violations:
            acceptance = by_key.get(finding_key(self.check, violation))
            if acceptance is None:
                violations.append(violation)
            elif acceptance.expired(today):
                violations.append({**violation, "acceptance": f"expired on {acceptance.until} ({acceptance.reason})"})
            else:
                accepted.append({**violation, "reason": acceptance.reason, "until": acceptance.until.isoformat()})
        return replace(self, violations=violations, accepted=accepted)

    def keys(self) -> set[str]:
        """The keys of every finding this verdict holds, failing or accepted."""
        return {finding_key(self.check, v) for v in [*self.violations, *self.accepted]}

    def record(self) -> dict:
        """The verdict as plain data (JSON-ready): what the report, the JSON summary and the
        history are built from. Every finding carries its stable key."""
        def keyed(rows):
            return [{"key": finding_key(self.check, v), **v} for v in rows]
        return {"check": self.check.name, "subject": self.subject, "description": self.check.description,
                "remediation": self.fix or self.check.remediation,
                "status": "blocked" if self.blocked else "ok" if self.ok else "failed",
                "blocked": self.blocked, "violations": keyed(self.violations),
                "accepted": keyed(self.accepted), "notes": keyed(self.notes), "facts": self.facts}

    def message(self, shown: int | None = None) -> str:
        return message(self.record(), shown)


def message(record: dict, shown: int | None = None) -> str:
    """A verdict's text, from its record: every violation, or the first `shown` and how many more."""
    head = f"{record['check']}[{record['subject']}]: {record['description']}"
    violations = record["violations"]
    if not violations:
        return f"{head}: ok"
    lines = [f"{head}: {len(violations)} violation(s)"]
    listed = violations if shown is None else violations[:shown]
    lines += [f"  - {describe(v)}" for v in listed]
    if len(listed) < len(violations):
        lines.append(f"  ... and {len(violations) - len(listed)} more: every one is in the HTML report and the JUnit XML")
    lines.append(f"  fix: {record['remediation']}")
    return "\n".join(lines)


def unmatched(acceptances: list[Acceptance], records: list[dict]) -> list[Acceptance]:
    """Acceptances whose check ran but matched no finding: fixed, or mistyped; either way the
    line should go."""
    ran = {r["check"] for r in records}
    seen = {f["key"] for r in records for f in [*r["violations"], *r["accepted"]]}
    return [a for a in acceptances if a.key.split(":", 1)[0] in ran and a.key not in seen]


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
