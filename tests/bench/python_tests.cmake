# CLI test of `turbine bench` against the stub server of bench_client_bench --serve.
add_test(NAME bench_cli
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/cli_test.py
          $<TARGET_FILE:turbine> $<TARGET_FILE:bench_client_bench> ${CMAKE_BINARY_DIR}/bench_cli_test)
# `turbine bench` against a real `turbine serve` with the e2e tiny model (fixture in tests/e2e).
add_test(NAME bench_against_serve
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/serve_test.py
          $<TARGET_FILE:turbine> ${CMAKE_BINARY_DIR}/e2e/tiny-model ${CMAKE_BINARY_DIR}/bench_serve_test)
set_tests_properties(bench_against_serve PROPERTIES FIXTURES_REQUIRED e2e_model TIMEOUT 600)
