"""Ordak backup-and-restore verification: the library the pytest suite stands on."""
