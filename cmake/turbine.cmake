# turbine_library(NAME DIR [DEPS ...]): a static library from every .cc under DIR (recursive).
function(turbine_library name dir)
  cmake_parse_arguments(ARG "" "" "DEPS" ${ARGN})
  file(GLOB_RECURSE srcs CONFIGURE_DEPENDS ${dir}/*.cc)
  if(srcs)
    add_library(${name} STATIC ${srcs})
    target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR}/src)
    target_link_libraries(${name} PUBLIC ${ARG_DEPS})
  else()
    add_library(${name} INTERFACE)
    target_include_directories(${name} INTERFACE ${PROJECT_SOURCE_DIR}/src)
    target_link_libraries(${name} INTERFACE ${ARG_DEPS})
  endif()
endfunction()

# turbine_tests(DIR [DEPS ...]): one GoogleTest executable per DIR/*_test.cc, registered in CTest.
function(turbine_tests dir)
  cmake_parse_arguments(ARG "" "" "DEPS" ${ARGN})
  file(GLOB tests CONFIGURE_DEPENDS ${dir}/*_test.cc)
  foreach(t ${tests})
    get_filename_component(base ${t} NAME_WE)
    get_filename_component(comp ${dir} NAME)
    set(exe ${comp}_${base})
    add_executable(${exe} ${t})
    target_link_libraries(${exe} PRIVATE ${ARG_DEPS} GTest::gtest GTest::gtest_main GTest::gmock)
    target_include_directories(${exe} PRIVATE ${PROJECT_SOURCE_DIR}/tests)
    set_target_properties(${exe} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
    target_compile_definitions(${exe} PRIVATE
      TURBINE_SOURCE_DIR="${PROJECT_SOURCE_DIR}"
      TURBINE_BINARY_DIR="${CMAKE_BINARY_DIR}")
    gtest_discover_tests(${exe} DISCOVERY_MODE PRE_TEST TEST_PREFIX "${exe}."
      PROPERTIES ENVIRONMENT "TURBINE_SOURCE_DIR=${PROJECT_SOURCE_DIR}")
  endforeach()
endfunction()
