# The suite's machinery lives in checks/; this file only loads it.
pytest_plugins = ["checks.plugin"]
