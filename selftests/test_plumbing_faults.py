"""The plumbing tests pass on the healthy reference and fail, naming the fault, on a broken one."""


def test_healthy_reference_passes(ordak_clone):
    run = ordak_clone().run_suite("tests/test_plumbing.py")
    assert run.exit_code == 0, run.output
    assert run.with_status("passed") == {
        "test_store_table_readable[bannos]", "test_store_table_readable[flourlane]", "test_stage_enum_labels"}


def test_dropped_store_table_is_named(ordak_clone):
    run = ordak_clone("drop table public.orders_flourlane cascade").run_suite("tests/test_plumbing.py")
    assert run.failed() == {"test_store_table_readable[flourlane]"}
    assert "public.orders_flourlane: table is missing" in run.outcome("test_store_table_readable[flourlane]").message


def test_renamed_stage_label_is_named(ordak_clone):
    run = ordak_clone("alter type public.stage_type rename value 'Packing' to 'Boxing'").run_suite(
        "tests/test_plumbing.py")
    assert run.failed() == {"test_stage_enum_labels"}
    message = run.outcome("test_stage_enum_labels").message
    assert "public.stage_type.Packing: label is missing" in message
    assert "public.stage_type.Boxing: label is not in the contract" in message
