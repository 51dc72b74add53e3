"""Self-tests of checks/reference (see that package's docstring)."""
