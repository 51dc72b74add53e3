"""The house's layers, read from the imports (the standard library's ast), so that they stay:
imports only point down, and no module imports itself back through another.

    tests -> plugin, run -> report / drill -> rules -> connect / reference -> core

Each subpackage's __init__ says what it may import; this test holds the code to it."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHECKS = ROOT / "checks"
CORE = {"checks.core", "checks.contract", "checks.errors", "checks.migration_files"}
# What each part may import from checks (besides its own part and the core).
MAY_IMPORT = {
    "core": set(),
    "connect": set(),
    "reference": set(),
    "rules": {"connect", "reference"},
    "drill": {"rules", "connect", "reference"},
    "report": set(),
    "plugin": {"report", "drill", "rules", "connect", "reference"},
}
TOP_MODULES_AT_MOST = 8


def part(module: str) -> str:
    """checks.rules.data -> rules; checks.plugin, checks.run -> plugin; the core -> core."""
    if module in CORE or module == "checks":
        return "core"
    name = module.split(".")[1]
    return "plugin" if name in ("plugin", "run") else name


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(CHECKS.rglob("*.py")):
        dotted = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        found[dotted.removesuffix(".__init__")] = path
    return found


def imports(module: str, path: Path) -> set[str]:
    """The checks modules a module imports (from x import y counts y when y is a module)."""
    known, found = modules(), set()
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("checks")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolved against this package
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1] + ([base] if base else []))
            if not base.startswith("checks"):
                continue
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    return {m for m in found if m != module}


def graph() -> dict[str, set[str]]:
    return {module: imports(module, path) for module, path in modules().items()}


def test_every_import_points_down_or_stays_in_its_part():
    wrong = []
    for module, targets in graph().items():
        mine = part(module)
        for target in targets:
            theirs = part(target)
            if theirs not in (mine, "core") and theirs not in MAY_IMPORT[mine]:
                wrong.append(f"{module} ({mine}) imports {target} ({theirs})")
    assert not wrong, "imports that point up or across:\n" + "\n".join(wrong)


def test_no_import_cycle():
    edges, cycles = graph(), []

    def visit(node, path, seen):
        for target in sorted(edges.get(node, ())):
            if target in path:
                cycles.append(" -> ".join(path[path.index(target):] + [target]))
            elif target not in seen:
                seen.add(target)
                visit(target, path + [target], seen)

    for start in sorted(edges):
        visit(start, [start], {start})
    assert not cycles, "import cycles:\n" + "\n".join(sorted(set(cycles)))


def test_checks_holds_few_modules_at_its_top():
    top = sorted(p.name for p in CHECKS.glob("*.py"))
    assert len(top) <= TOP_MODULES_AT_MOST, top


@pytest.mark.parametrize("package", sorted(p.name for p in CHECKS.iterdir() if (p / "__init__.py").exists()))
def test_each_part_says_what_it_holds_and_may_import(package):
    doc = ast.get_docstring(ast.parse((CHECKS / package / "__init__.py").read_text())) or ""
    assert "May import" in doc, f"checks/{package}/__init__.py must say what it may import"


def test_the_rule_itself_can_fail():
    """The checker sees an import that points up (a rule importing the drill)."""
    source = "from checks.drill import rehearsal\n"
    tree = ast.parse(source)
    (node,) = [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert part(f"{node.module}.{node.names[0].name}") == "drill" and "drill" not in MAY_IMPORT["rules"]
