// grpc::ServerCredentials over gRPC core's own credentials, with the token check installed as a
// core auth metadata processor.
//
// Why not grpc::InsecureServerCredentials()->SetAuthMetadataProcessor(): in gRPC 1.51 the C++
// insecure credentials are not core credentials at all, and setting a processor on them aborts
// the process (insecure_server_credentials.cc: "assertion failed"). Tokens must also work without
// TLS (behind a mesh that terminates it), so the server builds core credentials itself (insecure
// or SSL) and sets the processor through the C API, which both kinds honour. A server
// interceptor is no substitute: in 1.51 a server interceptor cannot end a call with a status of
// its choosing, so the handler would run before the call could be refused.
//
// The processor sees every call's initial metadata, :path included, before any handler runs;
// the authorization entry is consumed there, so handlers (and anything that logs metadata) never
// see the token. The same processor applies the repository access policy (repository_access.h)
// to the calls that load and unload models, so a refused change never reaches its handler.
#pragma once

#include <memory>

#include <grpc/grpc_security.h>
#include <grpcpp/security/server_credentials.h>

#include "server/security/repository_access.h"
#include "server/security/token_authenticator.h"

namespace elliptical::server::security {

class CoreServerCredentials final : public grpc::ServerCredentials {
 public:
  // Takes ownership of `core`. With a non-null `authenticator` every call is checked by it; with
  // a non-null `repository_access`, every call that changes the repository too (after the token
  // check: a call without an accepted token is UNAUTHENTICATED before it is PERMISSION_DENIED).
  CoreServerCredentials(grpc_server_credentials* core, std::shared_ptr<const TokenAuthenticator> authenticator,
                        std::shared_ptr<const RepositoryAccess> repository_access = nullptr);
  ~CoreServerCredentials() override;

  // The token check is fixed at construction; another processor is refused (and logged).
  void SetAuthMetadataProcessor(const std::shared_ptr<grpc::AuthMetadataProcessor>&) override;

 private:
  int AddPortToServer(const std::string& addr, grpc_server* server) override;

  grpc_server_credentials* const core_;
};

}  // namespace elliptical::server::security
