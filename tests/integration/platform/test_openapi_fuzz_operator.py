"""The OpenAPI fuzz (`support.fuzz`) as an operator."""

from support.fuzz import fuzz_test

from crm_api.accounts.models import Role

test_openapi_fuzzing_as_an_operator_finds_no_server_error_and_no_undeclared_answer = fuzz_test(
    Role.OPERATOR
)
