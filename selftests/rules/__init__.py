"""Self-tests of checks/rules (see that package's docstring)."""
