"""Random sequences of write-RPC calls (repeats, out of order, wrong store, any role) on fresh
orders, with Ordak's stage-machine invariants checked after every call. Hypothesis shrinks a
failure to the shortest sequence of calls that shows it, and prints it. Writes in sandbox()."""

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, precondition, rule, run_state_machine_as_test

from checks.contract import contract, stage_columns, stages
from checks.rules import rpc

pytestmark = pytest.mark.writes

STORES = contract()["stores"]
SCENARIOS = rpc.scenarios()
# The only moves a stage may make, and the scenario allowed to make each.
MOVES = {(spec["from"], spec["to"]): name for name, spec in SCENARIOS.items() if "to" in spec}
ORDERS_PER_RUN = 3
TIMESTAMPS = [column for stage in stages()[:-1] for column in stage_columns(stage)]


class StageMachine(RuleBasedStateMachine):
    orders = Bundle("orders")

    def __init__(self, target):
        super().__init__()
        self.target = target
        self._sandbox = target.sandbox()
        self.conn = self._sandbox.__enter__()
        self.actors = rpc.create_actors(self.conn)
        self.created = 0

    # A few orders per run, so that the steps go to calls on them: repeats, out-of-order moves,
    # the wrong store (left alone, Hypothesis made two orders for every call).
    @precondition(lambda self: self.created < ORDERS_PER_RUN)
    @rule(target=orders, store=st.sampled_from(STORES))
    def new_order(self, store):
        self.created += 1
        return store, rpc.fresh_order(self.target, self.conn, store)

    @rule(order=orders, name=st.sampled_from(list(SCENARIOS)), caller=st.sampled_from(rpc.ROLES),
          wrong_store=st.booleans())
    def call(self, order, name, caller, wrong_store):
        store, order_id = order
        spec = SCENARIOS[name]
        called_store = next(s for s in STORES if s != store) if wrong_store else store
        rpc.age_timestamps(self.conn, store, order_id)  # as if each call were its own transaction
        before = rpc.snapshot(self.conn, store, order_id)
        answer = rpc.invoke(self.target, self.conn, self.actors[caller], spec["rpc"],
                            rpc.arguments(spec, called_store, order_id, self.actors))
        after = rpc.snapshot(self.conn, store, order_id)
        changed = [key for key in before if key != "events" and before[key] != after[key]]
        events = rpc.event_changes(before, after)

        if answer.rejected:
            assert not changed and not events, \
                f"{name} was rejected ({answer}) but left a trace: {changed or ''} {events or ''}"
            return
        if before["stage"] != after["stage"]:
            move = (before["stage"], after["stage"])
            assert MOVES.get(move) == name, f"{name} moved the order {move[0]} -> {move[1]}, not a move it may make"
        for column in TIMESTAMPS:
            assert before[column] is None or before[column] == after[column] or (
                after[column] is None and column in rpc.clearable(spec)), \
                f"{name} changed {column} once set: {before[column]} -> {after[column]}"
        # Only what the contract allows: set by assign_staff, cleared (or, for the complete_*
        # RPCs the live Ordak runs that way, cleared or kept: may_clear), never handed to another.
        assignee = rpc.assignee_problem(spec, before, after)
        assert not assignee, f"{name} {assignee}"
        expected = {spec["event"]: 1} if spec.get("event") and (changed or spec.get("every_call_logs")) else {}
        if spec.get("event"):
            assert events == expected, f"{name} changed {changed or 'nothing'} and logged {events or 'no event'}; " \
                                       f"expected {expected or 'no event'}"

    def teardown(self):
        self._sandbox.__exit__(None, None, None)


def test_stage_machine_invariants(target):
    blocker = rpc.cannot_probe(target)
    if blocker:
        pytest.skip(blocker)
    # The number of examples comes from the Hypothesis profile (tests/conftest.py): 200 by default.
    run_state_machine_as_test(lambda: StageMachine(target), settings=settings(settings.default, stateful_step_count=25))
