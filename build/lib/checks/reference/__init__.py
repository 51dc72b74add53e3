"""The embedded reference Ordak: an embedded PostgreSQL server (embedded.py) carrying a
Supabase-shaped database built from this folder's SQL (bootstrap/, extensions/, the
migrations in supabase/migrations/, seed.sql), kept as a template and cloned per run
(cluster.py). `python -m checks.reference` starts one for psql.

May import: the core; nothing above it."""
