# Fleet mode as separate processes (issue 5 §5): real etcd, `turbine worker` x3 (tiny real model),
# `turbine frontend`; the tiny model comes from the e2e fixture.
add_test(NAME fleet_processes
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/fleet_test.py $<TARGET_FILE:turbine> ${CMAKE_BINARY_DIR}/e2e/tiny-model)
set_tests_properties(fleet_processes PROPERTIES FIXTURES_REQUIRED e2e_model TIMEOUT 600)
