"""Probing production leaves no error in its server log, where one could page someone: a read
RPC is called as anon only when anon may execute it (has_function_privilege); a role
without EXECUTE is refused already, which is the healthy answer."""

PROBES = "test_read_rpc_gives_anon_nothing"


def _log_errors(cluster, database: str, since: int) -> list[str]:
    """ERROR lines the server logged for one database (log_line_prefix names it) after `since`."""
    text = (cluster.server.datadir / "log").read_bytes()[since:].decode(errors="replace")
    return [line for line in text.splitlines() if f"] {database} ERROR:" in line]


def _log_size(cluster) -> int:
    return (cluster.server.datadir / "log").stat().st_size


def test_healthy_reference_is_probed_without_a_call(ordak_clone, reference):
    cluster, _ = reference
    clone = ordak_clone()
    since = _log_size(cluster)
    run = clone.run_suite("tests/test_security.py", "-k", PROBES, env_name="production")
    assert run.exit_code == 0 and len(run.with_status("passed")) == 4, run.output
    assert run.output.count("anon=no EXECUTE: refused without a call") == 4, run.output
    assert _log_errors(cluster, clone.name, since) == []


def test_anon_with_execute_is_called_and_a_refusal_is_healthy(ordak_clone, reference):
    """The other side, which also shows that the log check above sees a probe's call."""
    cluster, _ = reference
    clone = ordak_clone("grant execute on function public.get_queue_stats(text) to anon")
    since = _log_size(cluster)
    run = clone.run_suite("tests/test_security.py", "-k", PROBES, env_name="production")
    assert run.exit_code == 0 and len(run.with_status("passed")) == 4, run.output
    assert "test_read_rpc_gives_anon_nothing[get_queue_stats]: anon=may execute; the function refused" in run.output
    errors = _log_errors(cluster, clone.name, since)
    assert len(errors) == 1 and "permission denied: caller is not active staff" in errors[0], errors
