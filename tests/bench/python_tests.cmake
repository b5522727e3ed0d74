# CLI test of `turbine bench` against the stub server of bench_client_bench --serve.
add_test(NAME bench_cli
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/cli_test.py
          $<TARGET_FILE:turbine> $<TARGET_FILE:bench_client_bench> ${CMAKE_BINARY_DIR}/bench_cli_test)
