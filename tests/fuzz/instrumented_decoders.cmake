# libjpeg-turbo, libpng and libwebp from Debian's source packages (ELLIPTICAL_FUZZ_DECODER_SOURCES),
# each built by its own CMake with this build's sanitizers and libFuzzer's coverage, and the
# server's decoder sources (server/input/) compiled again against them:
# elliptical_image_decoder_instrumented, for the image_decoder fuzz target only. Static, the
# decoders' own tools and tests left out. libjpeg-turbo without its SIMD code (assembly that no
# sanitizer sees, and nasm is not a build dependency): the fuzzer checks its C paths.
include(ExternalProject)
set(_src "${ELLIPTICAL_FUZZ_DECODER_SOURCES}")
foreach(_pkg libjpeg-turbo libpng1.6 libwebp)
  if(NOT EXISTS "${_src}/${_pkg}/CMakeLists.txt")
    message(FATAL_ERROR "ELLIPTICAL_FUZZ_DECODER_SOURCES: no ${_src}/${_pkg} (tests/fuzz/fetch_decoder_sources.sh)")
  endif()
endforeach()
set(_flags "-fsanitize=${ELLIPTICAL_SANITIZE} -fno-omit-frame-pointer -fsanitize=fuzzer-no-link")
set(_common
  -DCMAKE_C_COMPILER=${CMAKE_C_COMPILER}
  -DCMAKE_C_COMPILER_LAUNCHER=${CMAKE_C_COMPILER_LAUNCHER}
  -DCMAKE_BUILD_TYPE=RelWithDebInfo
  "-DCMAKE_C_FLAGS_RELWITHDEBINFO=${CMAKE_C_FLAGS_RELWITHDEBINFO}"
  "-DCMAKE_C_FLAGS=${_flags}"
  "-DCMAKE_EXE_LINKER_FLAGS=-fsanitize=${ELLIPTICAL_SANITIZE}"
  -DCMAKE_POSITION_INDEPENDENT_CODE=ON)
set(_out "${CMAKE_CURRENT_BINARY_DIR}/decoders")

ExternalProject_Add(fuzz_libjpeg
  SOURCE_DIR "${_src}/libjpeg-turbo" BINARY_DIR "${_out}/libjpeg-turbo"
  CMAKE_ARGS ${_common} -DENABLE_SHARED=OFF -DWITH_SIMD=OFF -DWITH_TURBOJPEG=OFF
  BUILD_COMMAND ${CMAKE_COMMAND} --build . --target jpeg-static
  INSTALL_COMMAND "" BUILD_BYPRODUCTS "${_out}/libjpeg-turbo/libjpeg.a")
ExternalProject_Add(fuzz_libpng
  SOURCE_DIR "${_src}/libpng1.6" BINARY_DIR "${_out}/libpng"
  CMAKE_ARGS ${_common} -DPNG_SHARED=OFF -DPNG_EXECUTABLES=OFF -DPNG_TESTS=OFF
  BUILD_COMMAND ${CMAKE_COMMAND} --build . --target png_static
  INSTALL_COMMAND "" BUILD_BYPRODUCTS "${_out}/libpng/libpng16.a")
ExternalProject_Add(fuzz_libwebp
  SOURCE_DIR "${_src}/libwebp" BINARY_DIR "${_out}/libwebp"
  CMAKE_ARGS ${_common} -DBUILD_SHARED_LIBS=OFF -DWEBP_BUILD_ANIM_UTILS=OFF -DWEBP_BUILD_CWEBP=OFF
             -DWEBP_BUILD_DWEBP=OFF -DWEBP_BUILD_GIF2WEBP=OFF -DWEBP_BUILD_IMG2WEBP=OFF
             -DWEBP_BUILD_VWEBP=OFF -DWEBP_BUILD_WEBPINFO=OFF -DWEBP_BUILD_LIBWEBPMUX=OFF
             -DWEBP_BUILD_WEBPMUX=OFF -DWEBP_BUILD_EXTRAS=OFF
  BUILD_COMMAND ${CMAKE_COMMAND} --build . --target webpdecoder
  INSTALL_COMMAND "" BUILD_BYPRODUCTS "${_out}/libwebp/libwebpdecoder.a")

find_package(ZLIB REQUIRED)
add_library(elliptical_image_decoder_instrumented STATIC
  ${PROJECT_SOURCE_DIR}/server/input/image_decoder.cc ${PROJECT_SOURCE_DIR}/server/input/jpeg_decoder.cc
  ${PROJECT_SOURCE_DIR}/server/input/png_decoder.cc ${PROJECT_SOURCE_DIR}/server/input/webp_decoder.cc)
add_dependencies(elliptical_image_decoder_instrumented fuzz_libjpeg fuzz_libpng fuzz_libwebp)
# Before the system's include directories: these headers, not /usr/include's, match the code.
target_include_directories(elliptical_image_decoder_instrumented BEFORE PRIVATE
  "${_src}/libjpeg-turbo" "${_out}/libjpeg-turbo" "${_src}/libpng1.6" "${_out}/libpng" "${_src}/libwebp/src")
target_include_directories(elliptical_image_decoder_instrumented PUBLIC ${PROJECT_SOURCE_DIR})
target_compile_options(elliptical_image_decoder_instrumented PRIVATE -fsanitize=fuzzer-no-link)
target_link_libraries(elliptical_image_decoder_instrumented
  PUBLIC absl::status absl::statusor absl::strings
  PRIVATE "${_out}/libjpeg-turbo/libjpeg.a" "${_out}/libpng/libpng16.a" "${_out}/libwebp/libwebpdecoder.a"
          ZLIB::ZLIB Threads::Threads m)
