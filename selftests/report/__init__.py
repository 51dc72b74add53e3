"""Self-tests of checks/report (see that package's docstring)."""
