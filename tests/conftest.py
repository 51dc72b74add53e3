import os

from hypothesis import HealthCheck, Phase, settings

# Deterministic by default: a verification run must give the same answer twice. Set
# HYPOTHESIS_PROFILE=explore to search further, with random examples. The self-tests' inner
# runs use "selftest": the same derandomized search, shorter (each fault needs only to be
# caught, so a failing example is not shrunk; the suite's own runs keep the full search).
_COMMON = dict(deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", derandomize=True, print_blob=False, max_examples=200, **_COMMON)
settings.register_profile("selftest", derandomize=True, print_blob=False, max_examples=25,
                          phases=[Phase.explicit, Phase.reuse, Phase.generate], **_COMMON)
settings.register_profile("explore", max_examples=500, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
