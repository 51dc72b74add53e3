import os

from hypothesis import HealthCheck, settings

# Deterministic by default: a verification run must give the same answer twice. Set
# HYPOTHESIS_PROFILE=explore to search further, with random examples.
settings.register_profile("ci", derandomize=True, database=None, deadline=None, print_blob=False,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("explore", max_examples=500, deadline=None, database=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
