#include "server/generation/tokenizer.h"

#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#include <mutex>

namespace elliptical::server {
namespace {

// The functions of the SentencePiece shim (sentencepiece_shim.cc), resolved once.
struct Shim {
  void* (*load)(const char*, char**) = nullptr;
  void (*free_processor)(void*) = nullptr;
  void (*free_buffer)(void*) = nullptr;
  int (*piece_size)(void*) = nullptr;
  int (*bos_id)(void*) = nullptr;
  int (*eos_id)(void*) = nullptr;
  int32_t* (*encode)(void*, const char*, size_t, size_t*) = nullptr;
  char* (*decode)(void*, const int32_t*, size_t, size_t*) = nullptr;
  char* (*id_to_piece)(void*, int32_t, size_t*) = nullptr;
  std::string error;  // why it could not be loaded
};

std::string ExecutableDir() {
  char path[4096];
  const ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 1);
  if (n <= 0) return ".";
  std::string p(path, n);
  return p.substr(0, p.rfind('/'));
}

// Looks for the shim: $ELLIPTICAL_SPM_SHIM, then beside the executable and in ../lib (an
// install), then where the build put it.
const Shim& GetShim() {
  static Shim shim;
  static std::once_flag once;
  std::call_once(once, [] {
    std::vector<std::string> candidates;
    if (const char* env = std::getenv("ELLIPTICAL_SPM_SHIM")) candidates.push_back(env);
    const std::string dir = ExecutableDir();
    candidates.push_back(dir + "/libelliptical_spm.so");
    candidates.push_back(dir + "/../lib/libelliptical_spm.so");
    candidates.push_back(ELLIPTICAL_SPM_SHIM_BUILD_PATH);
    void* library = nullptr;
    for (const std::string& path : candidates) {
#ifdef ELLIPTICAL_SANITIZED_BUILD
      // Sanitizer runtimes refuse RTLD_DEEPBIND. A link namespace of its own keeps SentencePiece
      // on its protobuf copy just as well; the shim is left uninstrumented for it, since the
      // sanitizer runtime is not visible there (cmake/sanitizers.cmake).
      library = dlmopen(LM_ID_NEWLM, path.c_str(), RTLD_NOW | RTLD_LOCAL);
#else
      // RTLD_DEEPBIND: SentencePiece must bind to its own protobuf copy, not the process's.
      library = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
#endif
      if (library) break;
    }
    if (!library) {
      shim.error = "cannot load libelliptical_spm.so (SentencePiece); set ELLIPTICAL_SPM_SHIM to its path";
      return;
    }
    auto get = [&](auto* fn, const char* name) {
      *fn = reinterpret_cast<std::remove_pointer_t<decltype(fn)>>(dlsym(library, name));
      if (!*fn) shim.error = std::string("libelliptical_spm.so lacks ") + name;
    };
    get(&shim.load, "elliptical_spm_load");
    get(&shim.free_processor, "elliptical_spm_free");
    get(&shim.free_buffer, "elliptical_spm_free_buffer");
    get(&shim.piece_size, "elliptical_spm_piece_size");
    get(&shim.bos_id, "elliptical_spm_bos_id");
    get(&shim.eos_id, "elliptical_spm_eos_id");
    get(&shim.encode, "elliptical_spm_encode");
    get(&shim.decode, "elliptical_spm_decode");
    get(&shim.id_to_piece, "elliptical_spm_id_to_piece");
  });
  return shim;
}

}  // namespace

struct Tokenizer::Impl {
  const Shim* shim = nullptr;
  void* processor = nullptr;
  ~Impl() {
    if (processor) shim->free_processor(processor);
  }
};

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::~Tokenizer() = default;

std::unique_ptr<Tokenizer> Tokenizer::Load(const std::string& path, std::string* error) {
  const Shim& shim = GetShim();
  if (!shim.error.empty()) {
    if (error) *error = shim.error;
    return nullptr;
  }
  char* message = nullptr;
  void* processor = shim.load(path.c_str(), &message);
  if (!processor) {
    if (error) *error = "cannot load SentencePiece model " + path + ": " + (message ? message : "?");
    shim.free_buffer(message);
    return nullptr;
  }
  auto impl = std::make_unique<Impl>();
  impl->shim = &shim;
  impl->processor = processor;
  return std::unique_ptr<Tokenizer>(new Tokenizer(std::move(impl)));
}

int Tokenizer::vocab_size() const { return impl_->shim->piece_size(impl_->processor); }
int Tokenizer::bos_id() const { return impl_->shim->bos_id(impl_->processor); }
int Tokenizer::eos_id() const { return impl_->shim->eos_id(impl_->processor); }

std::vector<int32_t> Tokenizer::Encode(const std::string& text) const {
  size_t count = 0;
  int32_t* ids = impl_->shim->encode(impl_->processor, text.data(), text.size(), &count);
  std::vector<int32_t> out(ids, ids + count);
  impl_->shim->free_buffer(ids);
  return out;
}

std::string Tokenizer::Decode(const std::vector<int32_t>& ids) const {
  // A model's vocabulary may be larger than its tokenizer's (servable_registry.cc allows it); an
  // id the tokenizer lacks has no text. SentencePiece would refuse the whole sequence instead,
  // and every later piece of a stream would decode to nothing.
  const int vocab = vocab_size();
  std::vector<int32_t> known;
  known.reserve(ids.size());
  for (int32_t id : ids) {
    if (id >= 0 && id < vocab) known.push_back(id);
  }
  size_t size = 0;
  char* text = impl_->shim->decode(impl_->processor, known.data(), known.size(), &size);
  std::string out(text, size);
  impl_->shim->free_buffer(text);
  return out;
}

std::string Tokenizer::IdToPiece(int32_t id) const {
  size_t size = 0;
  char* piece = impl_->shim->id_to_piece(impl_->processor, id, &size);
  std::string out(piece, size);
  impl_->shim->free_buffer(piece);
  return out;
}

}  // namespace elliptical::server
