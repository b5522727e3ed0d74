# End-to-end tests of `turbine serve` (they run node and curl; the file name is the glob's).
#   e2e_setup_model  fixture: a tiny model made with `turbine make-model` into <build>/e2e
#   e2e_setup_npm    fixture: `npm ci` of the pinned official openai client into <build>/e2e
#   e2e_openai_node  node --test with the openai client against a real `turbine serve`
#   e2e_serve_curl   SSE framing and error bodies byte for byte with curl; disconnect frees blocks
set(_e2e_out ${CMAKE_BINARY_DIR}/e2e)
add_test(NAME e2e_setup_model
  COMMAND /bin/sh ${CMAKE_CURRENT_LIST_DIR}/setup.sh model ${CMAKE_CURRENT_LIST_DIR} ${_e2e_out} $<TARGET_FILE:turbine>)
set_tests_properties(e2e_setup_model PROPERTIES FIXTURES_SETUP e2e_model TIMEOUT 600)
add_test(NAME e2e_setup_npm
  COMMAND /bin/sh ${CMAKE_CURRENT_LIST_DIR}/setup.sh npm ${CMAKE_CURRENT_LIST_DIR} ${_e2e_out})
set_tests_properties(e2e_setup_npm PROPERTIES FIXTURES_SETUP e2e_npm TIMEOUT 600)
add_test(NAME e2e_openai_node
  COMMAND node --test --test-concurrency=1 ${_e2e_out}/openai.test.mjs)
set_tests_properties(e2e_openai_node PROPERTIES
  FIXTURES_REQUIRED "e2e_model;e2e_npm" TIMEOUT 600 RUN_SERIAL TRUE
  ENVIRONMENT "TURBINE_BIN=$<TARGET_FILE:turbine>;TURBINE_E2E_MODEL=${_e2e_out}/tiny-model")
add_test(NAME e2e_serve_curl
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/curl_test.py $<TARGET_FILE:turbine> ${_e2e_out}/tiny-model)
set_tests_properties(e2e_serve_curl PROPERTIES FIXTURES_REQUIRED e2e_model TIMEOUT 600)
