add_test(NAME apps_cli_test
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/cli_test.py ${CMAKE_BINARY_DIR})
set_tests_properties(apps_cli_test PROPERTIES TIMEOUT 600)
