"""What Ordak must be: one module per area (schema, security, migrations, data, queue, rpc,
smoke, platform, recovery, compare, replay, amcheck, cold exports), each check a query that
returns violations, with its catalog reads and the privileges it stands on.

May import: checks.connect, checks.reference, the core; never the drill, the report or the plugin."""
