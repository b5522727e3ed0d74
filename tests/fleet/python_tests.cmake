# Fleet mode as separate processes (issue 5 §5): real etcd, `turbine worker` x3 (tiny real model),
# `turbine frontend`; the tiny model comes from the e2e fixture.
add_test(NAME fleet_processes
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/fleet_test.py $<TARGET_FILE:turbine> ${CMAKE_BINARY_DIR}/e2e/tiny-model)
set_tests_properties(fleet_processes PROPERTIES FIXTURES_REQUIRED e2e_model TIMEOUT 600)

# vLLM engines behind the frontend (`turbine worker --engine upstream`): real etcd, stand-in vLLM
# servers (tests/fleet/vllm_server.py) with their KV events, `turbine frontend --router kv`.
add_test(NAME fleet_upstream_engines
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/upstream_test.py $<TARGET_FILE:turbine> ${CMAKE_BINARY_DIR}/e2e/tiny-model)
set_tests_properties(fleet_upstream_engines PROPERTIES FIXTURES_REQUIRED e2e_model TIMEOUT 300)

# Disaggregated serving (docs/fleet.md): real etcd, a prefill worker and a decode worker moving KV
# blocks over TCP, an aggregated worker as the reference, `turbine frontend --max-local-prefill-tokens`.
add_test(NAME fleet_disaggregated
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/disagg_test.py $<TARGET_FILE:turbine> ${CMAKE_BINARY_DIR}/e2e/tiny-model)
set_tests_properties(fleet_disaggregated PROPERTIES FIXTURES_REQUIRED e2e_model TIMEOUT 300)

# The SLA planner (docs/planner.md): real etcd, `turbine frontend`, `turbine planner --connector
# local` running `--engine mock` workers itself; load up, load down, SIGTERM; the etcd connector.
add_test(NAME fleet_planner
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/planner_test.py $<TARGET_FILE:turbine> ${CMAKE_BINARY_DIR}/e2e/tiny-model)
set_tests_properties(fleet_planner PROPERTIES FIXTURES_REQUIRED e2e_model TIMEOUT 300)
