// Why this file exists: civetweb (under prometheus-cpp's exposer) creates its threads with a
// small fixed stack (Debian builds it with a ~100 KiB stack size). glibc carves a thread's
// static TLS out of its stack, and LibTorch's CUDA libraries carry enough TLS that those
// threads cannot be created at all: the exposer fails with "Cannot create threads". Every
// explicit stack size in the process is raised to a floor that holds the TLS with room to spare.
// Defined in the executable, this definition takes precedence over glibc's for every library.
#include <dlfcn.h>
#include <pthread.h>

#include <cstddef>

namespace {

constexpr size_t kStackFloor = size_t{4} << 20;

using SetStackSize = int (*)(pthread_attr_t*, size_t);

SetStackSize Next() {
  static const SetStackSize next =
      reinterpret_cast<SetStackSize>(dlsym(RTLD_NEXT, "pthread_attr_setstacksize"));
  return next;
}

}  // namespace

extern "C" int pthread_attr_setstacksize(pthread_attr_t* attr, size_t size) {
  return Next()(attr, size < kStackFloor ? kStackFloor : size);
}
