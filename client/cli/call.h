// What every subcommand does the same way: connect, set the deadline, pick a model, read
// input files, and explain a failed call so that a person knows what to do next.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include <grpcpp/grpcpp.h>

#include "client/cli/commands.h"
#include "elliptical/v1/inference_service.grpc.pb.h"

namespace elliptical::client {

std::shared_ptr<grpc::Channel> Connect(const CallOptions& options);
void SetDeadline(const CallOptions& options, grpc::ClientContext* context);
const char* CodeName(grpc::StatusCode code);
// Prints the failure and returns exit code 1.
int Report(const CallOptions& options, const grpc::Status& status);
const char* StateName(v1::ModelState state);
const char* FamilyName(v1::ModelFamily family);
// The first ready model of `family`, or "" with a message printed.
std::string PickModel(const CallOptions& options, v1::InferenceService::Stub* stub,
                      v1::ModelFamily family);
// The bytes of a file, or nullopt with a message printed.
std::optional<std::string> ReadFile(const std::string& path);

}  // namespace elliptical::client
