#include "server/security/core_credentials.h"

#include <grpc/grpc.h>
#include <grpc/slice.h>
#include <grpc/support/log.h>

#include <optional>
#include <string>

#include "absl/strings/string_view.h"

namespace elliptical::server::security {
namespace {

absl::string_view View(const grpc_slice& slice) {
  return absl::string_view(reinterpret_cast<const char*>(GRPC_SLICE_START_PTR(slice)),
                           GRPC_SLICE_LENGTH(slice));
}

// What the processor checks; owned by core (ReleaseChecks).
struct Checks {
  std::shared_ptr<const TokenAuthenticator> authenticator;      // may be null
  std::shared_ptr<const RepositoryAccess> repository_access;    // may be null
};

// The check is a few hashes and compares, so it runs inline on the call's thread and answers
// through `done` before returning, as the core API allows for a non-blocking processor.
void ProcessCall(void* state, grpc_auth_context* /*context*/, const grpc_metadata* metadata,
                 size_t count, grpc_process_auth_metadata_done_cb done, void* user_data) {
  const Checks& checks = *static_cast<const Checks*>(state);
  absl::string_view method;
  std::optional<absl::string_view> authorization;
  const grpc_metadata* authorization_entry = nullptr;
  for (size_t i = 0; i < count; ++i) {
    const absl::string_view key = View(metadata[i].key);
    if (key == ":path") {
      method = View(metadata[i].value);
    } else if (key == "authorization" && !authorization_entry) {
      authorization = View(metadata[i].value);
      authorization_entry = &metadata[i];
    }
  }
  absl::Status status;
  if (checks.authenticator) status = checks.authenticator->Check(method, authorization);
  if (status.ok() && checks.repository_access) status = checks.repository_access->Check(method, authorization);
  if (status.ok()) {
    done(user_data, authorization_entry, authorization_entry ? 1 : 0, nullptr, 0, GRPC_STATUS_OK,
         nullptr);
  } else {
    const std::string message(status.message());
    done(user_data, nullptr, 0, nullptr, 0, static_cast<grpc_status_code>(status.code()), message.c_str());
  }
}

void ReleaseChecks(void* state) { delete static_cast<Checks*>(state); }

}  // namespace

CoreServerCredentials::CoreServerCredentials(grpc_server_credentials* core,
                                             std::shared_ptr<const TokenAuthenticator> authenticator,
                                             std::shared_ptr<const RepositoryAccess> repository_access)
    : core_(core) {
  if (authenticator || repository_access) {
    // Core may outlive this object (it holds its own reference to the credentials), so the
    // processor's state owns references to the checks and core releases them.
    auto* owned = new Checks{std::move(authenticator), std::move(repository_access)};
    grpc_auth_metadata_processor processor;
    processor.process = ProcessCall;
    processor.destroy = ReleaseChecks;
    processor.state = owned;
    grpc_server_credentials_set_auth_metadata_processor(core_, processor);
  }
}

CoreServerCredentials::~CoreServerCredentials() { grpc_server_credentials_release(core_); }

void CoreServerCredentials::SetAuthMetadataProcessor(
    const std::shared_ptr<grpc::AuthMetadataProcessor>&) {
  // gRPC's own log: this library stays free of the server's.
  gpr_log(GPR_ERROR, "CoreServerCredentials: a second auth metadata processor was ignored");
}

int CoreServerCredentials::AddPortToServer(const std::string& addr, grpc_server* server) {
  return grpc_server_add_http2_port(server, addr.c_str(), core_);
}

}  // namespace elliptical::server::security
