# Python tests of src/model (included by tests/CMakeLists.txt).
# Fixture `turbine_test_models`: writes <build>/test_models/tiny-hf-f32 (HF folder) and
# <build>/test_models/tiny-f32.gguf (same weights, seed 1) with makeModel().
add_test(NAME model_write_test_models
  COMMAND model_make_model_test --gtest_also_run_disabled_tests
          --gtest_filter=MakeModelFixture.DISABLED_WriteTestModels)
set_tests_properties(model_write_test_models PROPERTIES FIXTURES_SETUP turbine_test_models)

add_test(NAME model_reference_greedy_tiny
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/greedy_test.py
          ${CMAKE_BINARY_DIR}/test_models/tiny-hf-f32)
set_tests_properties(model_reference_greedy_tiny PROPERTIES FIXTURES_REQUIRED turbine_test_models
  TIMEOUT 300)
