// A C interface to SentencePiece, built as its own shared library and loaded by tokenizer.cc with
// dlopen(RTLD_LOCAL | RTLD_DEEPBIND). Why: Debian's libsentencepiece carries its own copy of
// protobuf-lite and exports it. Linked into the server like any library, those symbols take
// over libprotobuf's and the server crashes during start-up; loaded privately, SentencePiece
// binds to its own copy and the rest of the process never sees it. This file must not include
// Abseil or gRPC headers (../shared/STACK.md).
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <sentencepiece_processor.h>

namespace {

// Hands a string to the caller in malloc'ed memory, freed with elliptical_spm_free_buffer.
char* Copy(const std::string& s, size_t* size) {
  char* out = static_cast<char*>(std::malloc(s.size() + 1));
  std::memcpy(out, s.data(), s.size());
  out[s.size()] = '\0';
  *size = s.size();
  return out;
}

sentencepiece::SentencePieceProcessor* Processor(void* handle) {
  return static_cast<sentencepiece::SentencePieceProcessor*>(handle);
}

}  // namespace

extern "C" {

__attribute__((visibility("default"))) void* elliptical_spm_load(const char* path, char** error) {
  auto* processor = new sentencepiece::SentencePieceProcessor();
  const auto status = processor->Load(path);
  if (!status.ok()) {
    size_t size = 0;
    *error = Copy(status.ToString(), &size);
    delete processor;
    return nullptr;
  }
  return processor;
}

__attribute__((visibility("default"))) void elliptical_spm_free(void* handle) { delete Processor(handle); }

__attribute__((visibility("default"))) void elliptical_spm_free_buffer(void* buffer) { std::free(buffer); }

__attribute__((visibility("default"))) int elliptical_spm_piece_size(void* handle) {
  return Processor(handle)->GetPieceSize();
}
__attribute__((visibility("default"))) int elliptical_spm_bos_id(void* handle) { return Processor(handle)->bos_id(); }
__attribute__((visibility("default"))) int elliptical_spm_eos_id(void* handle) { return Processor(handle)->eos_id(); }

// Returns malloc'ed ids; *count receives their number.
__attribute__((visibility("default"))) int32_t* elliptical_spm_encode(void* handle, const char* text, size_t length,
                                                                       size_t* count) {
  std::vector<int> ids;
  Processor(handle)->Encode(std::string(text, length), &ids).IgnoreError();
  auto* out = static_cast<int32_t*>(std::malloc(sizeof(int32_t) * (ids.size() + 1)));
  for (size_t i = 0; i < ids.size(); ++i) out[i] = ids[i];
  *count = ids.size();
  return out;
}

__attribute__((visibility("default"))) char* elliptical_spm_decode(void* handle, const int32_t* ids, size_t count,
                                                                    size_t* size) {
  std::vector<int> in(ids, ids + count);
  std::string text;
  Processor(handle)->Decode(in, &text).IgnoreError();
  return Copy(text, size);
}

__attribute__((visibility("default"))) char* elliptical_spm_id_to_piece(void* handle, int32_t id, size_t* size) {
  return Copy(Processor(handle)->IdToPiece(id), size);
}

}  // extern "C"
