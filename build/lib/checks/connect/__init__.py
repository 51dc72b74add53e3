"""Where the suite looks: the environments file, the target database and the guards every
connection keeps (read-only, timeouts, on both Supabase doors), command-line values that name
a target or a time, and the read-only HTTP client.

May import: the core (checks.core, checks.contract, checks.errors); nothing above it."""
