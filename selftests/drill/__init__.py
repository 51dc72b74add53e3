"""Self-tests of checks/drill (see that package's docstring)."""
