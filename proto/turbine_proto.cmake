# Fleet transports of src/runtime (issue 5): gRPC request plane (C++ generated from
# proto/turbine.proto at build time), ZeroMQ event plane, etcd discovery over Boost.Beast.
# Included from src/CMakeLists.txt right after turbine_runtime is defined.
pkg_check_modules(TURBINE_GRPC REQUIRED IMPORTED_TARGET grpc++ protobuf)
# libzmq's pkg-config flags carry `-isystem /usr/include/mit-krb5`. CMake 3.25's FindPkgConfig
# makes it an include directory of the imported target on the first configure, but a compile
# option on every later one (it rebuilds the target from its cache, which kept the flag), so the
# second configure (the first `make serve` after `make test`) changed the flags of everything
# using ZeroMQ and rebuilt it. The check is forced to run afresh, as on the first configure.
unset(__pkg_config_checked_TURBINE_ZMQ CACHE)
pkg_check_modules(TURBINE_ZMQ REQUIRED IMPORTED_TARGET libzmq)
find_program(TURBINE_PROTOC protoc REQUIRED)
find_program(TURBINE_GRPC_CPP_PLUGIN grpc_cpp_plugin REQUIRED)

set(_turbine_proto ${PROJECT_SOURCE_DIR}/proto/turbine.proto)
set(_turbine_gen ${CMAKE_BINARY_DIR}/generated/proto)
set(_turbine_gen_srcs ${_turbine_gen}/turbine.pb.cc ${_turbine_gen}/turbine.grpc.pb.cc)
add_custom_command(
  OUTPUT ${_turbine_gen_srcs} ${_turbine_gen}/turbine.pb.h ${_turbine_gen}/turbine.grpc.pb.h
  COMMAND ${CMAKE_COMMAND} -E make_directory ${_turbine_gen}
  COMMAND ${TURBINE_PROTOC} --proto_path=${PROJECT_SOURCE_DIR}/proto --cpp_out=${_turbine_gen}
          --grpc_out=${_turbine_gen} --plugin=protoc-gen-grpc=${TURBINE_GRPC_CPP_PLUGIN}
          ${_turbine_proto}
  DEPENDS ${_turbine_proto}
  COMMENT "protoc: proto/turbine.proto"
  VERBATIM)

# Generated code is not held to -Werror; its headers are SYSTEM for our sources.
add_library(turbine_proto STATIC ${_turbine_gen_srcs})
target_compile_options(turbine_proto PRIVATE -Wno-error -w)
target_include_directories(turbine_proto SYSTEM PUBLIC ${_turbine_gen})
target_link_libraries(turbine_proto PUBLIC PkgConfig::TURBINE_GRPC)

target_link_libraries(turbine_runtime PUBLIC turbine_proto PkgConfig::TURBINE_ZMQ Boost::headers)
