# Helpers shared by every component's CMakeLists.txt.

# mlsec_library(NAME SOURCES... [LIBS ...]) - a static library with the
# project's warnings; its include/ directory is public.
function(mlsec_library name)
  cmake_parse_arguments(A "" "" "SOURCES;LIBS" ${ARGN})
  add_library(${name} STATIC ${A_SOURCES})
  target_compile_options(${name} PRIVATE ${MLSEC_WARN})
  if(EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/include)
    target_include_directories(${name} PUBLIC ${CMAKE_CURRENT_SOURCE_DIR}/include)
  endif()
  target_link_libraries(${name} PUBLIC ${A_LIBS})
  set_target_properties(${name} PROPERTIES POSITION_INDEPENDENT_CODE ON)
endfunction()

# mlsec_executable(NAME SOURCES... [LIBS ...]) - a program in build/bin.
function(mlsec_executable name)
  cmake_parse_arguments(A "" "" "SOURCES;LIBS" ${ARGN})
  add_executable(${name} ${A_SOURCES})
  target_compile_options(${name} PRIVATE ${MLSEC_WARN})
  target_link_libraries(${name} PRIVATE ${A_LIBS})
endfunction()

# mlsec_unit_test(NAME SOURCES... [LIBS ...] [LABELS ...]) - a cmocka test
# registered with ctest (label "unit" unless given).
function(mlsec_unit_test name)
  cmake_parse_arguments(A "" "" "SOURCES;LIBS;LABELS" ${ARGN})
  add_executable(${name} ${A_SOURCES})
  target_compile_options(${name} PRIVATE ${MLSEC_WARN})
  target_link_libraries(${name} PRIVATE ${A_LIBS} PkgConfig::CMOCKA)
  set_target_properties(${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
  add_test(NAME ${name} COMMAND ${name} WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
  if(NOT A_LABELS)
    set(A_LABELS unit)
  endif()
  set_tests_properties(${name} PROPERTIES LABELS "${A_LABELS}"
    ENVIRONMENT "MLSEC_SOURCE_DIR=${CMAKE_SOURCE_DIR};MLSEC_BIN_DIR=${CMAKE_BINARY_DIR}/bin")
endfunction()

# mlsec_fuzzer(NAME SOURCE harness.c CORPUS dir LIBS ...)
# harness.c defines LLVMFuzzerTestOneInput. Always builds NAME_replay (a
# plain main that runs every corpus file through the harness) and registers
# it with ctest, so each corpus entry is a regression test. With
# MLSEC_FUZZ=ON and clang, also builds NAME with -fsanitize=fuzzer.
function(mlsec_fuzzer name)
  cmake_parse_arguments(A "" "SOURCE;CORPUS" "LIBS" ${ARGN})
  add_executable(${name}_replay ${A_SOURCE} ${CMAKE_SOURCE_DIR}/tests/fuzz/replay_main.c)
  target_compile_options(${name}_replay PRIVATE ${MLSEC_WARN})
  target_link_libraries(${name}_replay PRIVATE ${A_LIBS})
  set_target_properties(${name}_replay PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
  add_test(NAME ${name}_replay COMMAND ${name}_replay ${A_CORPUS})
  set_tests_properties(${name}_replay PROPERTIES LABELS "fuzz-replay")
  if(MLSEC_FUZZ AND CMAKE_C_COMPILER_ID MATCHES "Clang")
    add_executable(${name} ${A_SOURCE})
    target_compile_options(${name} PRIVATE ${MLSEC_WARN} -fsanitize=fuzzer,address,undefined)
    target_link_options(${name} PRIVATE -fsanitize=fuzzer,address,undefined)
    target_link_libraries(${name} PRIVATE ${A_LIBS})
    set_target_properties(${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/fuzz)
  endif()
endfunction()

# mlsec_protoc_c(OUTVAR PROTO_ROOT file.proto...) - runs protoc-c at build
# time; OUTVAR receives the generated .c files; the output directory is
# added to OUTVAR_INCLUDE.
function(mlsec_protoc_c outvar root)
  set(out_dir ${CMAKE_BINARY_DIR}/gen)
  file(MAKE_DIRECTORY ${out_dir})
  set(srcs)
  foreach(p ${ARGN})
    string(REGEX REPLACE "\\.proto$" "" stem ${p})
    add_custom_command(
      OUTPUT ${out_dir}/${stem}.pb-c.c ${out_dir}/${stem}.pb-c.h
      COMMAND ${PROTOC_C} --c_out=${out_dir} -I${root} -I/usr/share/grpc-proto -I/usr/include ${root}/${p}
      DEPENDS ${root}/${p}
      COMMENT "protoc-c ${p}")
    list(APPEND srcs ${out_dir}/${stem}.pb-c.c)
  endforeach()
  set(${outvar} ${srcs} PARENT_SCOPE)
  set(${outvar}_INCLUDE ${out_dir} PARENT_SCOPE)
endfunction()
