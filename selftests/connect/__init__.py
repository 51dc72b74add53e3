"""Self-tests of checks/connect (see that package's docstring)."""
