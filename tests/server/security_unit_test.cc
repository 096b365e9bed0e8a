// The token and metrics-user files, the constant-time compare and the per-call decision of
// server/security/, as plain code (the end-to-end checks are tests/integration/security_test.py).
#include <gtest/gtest.h>

#include <string>

#include "server/security/constant_time.h"
#include "server/security/credential_files.h"
#include "server/security/repository_access.h"
#include "server/security/secret_set.h"
#include "server/security/token_authenticator.h"

namespace elliptical::server::security {
namespace {

TEST(TokenFile, TokensCommentsAndBlankLines) {
  auto tokens = ParseTokenFile("# ops team\n\n  alpha-1  \r\nbeta_2.x~+/==\n   # indented comment\n", "f");
  ASSERT_TRUE(tokens.ok()) << tokens.status();
  EXPECT_EQ(*tokens, (std::vector<std::string>{"alpha-1", "beta_2.x~+/=="}));
}

TEST(TokenFile, RejectsSpacesAndNamesTheLineNotTheToken) {
  auto tokens = ParseTokenFile("good\nsecret with-space\n", "--auth_tokens_file=t.txt");
  ASSERT_FALSE(tokens.ok());
  EXPECT_NE(tokens.status().message().find("--auth_tokens_file=t.txt line 2"), std::string::npos)
      << tokens.status();
  EXPECT_EQ(tokens.status().message().find("secret"), std::string::npos) << "echoes the token";
}

TEST(TokenFile, RejectsPaddingInsideAndOddCharacters) {
  EXPECT_FALSE(ParseTokenFile("ab=cd\n", "f").ok());
  EXPECT_FALSE(ParseTokenFile("tok\"en\n", "f").ok());
  EXPECT_FALSE(ParseTokenFile("===\n", "f").ok());
}

TEST(TokenFile, EmptyFileIsAnError) {
  EXPECT_FALSE(ParseTokenFile("", "f").ok());
  EXPECT_FALSE(ParseTokenFile("# only a comment\n\n", "f").ok());
}

TEST(BasicAuthFile, UserPasswordLines) {
  auto users = ParseBasicAuthFile("# scrapers\nprometheus:s3cr:et\n", "f");
  ASSERT_TRUE(users.ok()) << users.status();
  EXPECT_EQ(*users, (std::vector<std::string>{"prometheus:s3cr:et"}));
  EXPECT_FALSE(ParseBasicAuthFile("nopassword\n", "f").ok());
  EXPECT_FALSE(ParseBasicAuthFile(":password\n", "f").ok());
  EXPECT_FALSE(ParseBasicAuthFile("user:\n", "f").ok());
  EXPECT_FALSE(ParseBasicAuthFile("\n", "f").ok());
}

TEST(ReadFlagFile, MissingFileNamesFlagAndPath) {
  auto content = ReadFlagFile("auth_tokens_file", "/no/such/tokens.txt");
  ASSERT_FALSE(content.ok());
  EXPECT_NE(content.status().message().find("--auth_tokens_file=/no/such/tokens.txt"), std::string::npos);
}

TEST(ConstantTimeEquals, Semantics) {
  EXPECT_TRUE(ConstantTimeEquals("token-abc", "token-abc"));
  EXPECT_FALSE(ConstantTimeEquals("Token-abc", "token-abc"));  // first byte differs
  EXPECT_FALSE(ConstantTimeEquals("token-abd", "token-abc"));  // last byte differs
  EXPECT_FALSE(ConstantTimeEquals("token-ab", "token-abc"));   // a prefix
  EXPECT_FALSE(ConstantTimeEquals("token-abcd", "token-abc")); // longer
  EXPECT_FALSE(ConstantTimeEquals("", "token"));
  EXPECT_FALSE(ConstantTimeEquals("token", ""));
  EXPECT_TRUE(ConstantTimeEquals("", ""));
  // A repetition of the secret must not pass through the wrap-around of the shorter side.
  EXPECT_FALSE(ConstantTimeEquals("abcabc", "abc"));
  EXPECT_FALSE(ConstantTimeEquals(std::string("a\0b", 3), "a"));
}

TEST(SecretSet, MembershipOfEverySecret) {
  SecretSet set({"one", "two", "three"});
  EXPECT_TRUE(set.Contains("one"));
  EXPECT_TRUE(set.Contains("three"));
  EXPECT_FALSE(set.Contains("thre"));
  EXPECT_FALSE(set.Contains(""));
  EXPECT_FALSE(SecretSet({}).Contains(""));
}

TokenAuthenticator Authenticator(AuthExemptions exempt = {}) {
  return TokenAuthenticator(SecretSet({"tok-1", "tok-2"}), exempt);
}

TEST(TokenAuthenticator, RightTokenPasses) {
  EXPECT_TRUE(Authenticator().Check("/elliptical.v1.InferenceService/Classify", "Bearer tok-2").ok());
  EXPECT_TRUE(Authenticator().Check("/elliptical.v1.InferenceService/Classify", "bearer  tok-1 ").ok());
}

TEST(TokenAuthenticator, HealthExemptionCoversTheOpenInferenceProtocolHealthCalls) {
  AuthExemptions health;
  health.health = true;
  health.reflection = false;
  const auto auth = Authenticator(health);
  for (const char* method : {"/grpc.health.v1.Health/Check", "/inference.GRPCInferenceService/ServerLive",
                             "/inference.GRPCInferenceService/ServerReady",
                             "/inference.GRPCInferenceService/ModelReady"}) {
    EXPECT_TRUE(auth.Check(method, std::nullopt).ok()) << method;
  }
  for (const char* method : {"/inference.GRPCInferenceService/ModelInfer",
                             "/inference.GRPCInferenceService/ModelMetadata",
                             "/inference.GRPCInferenceService/ServerLiveX"}) {
    EXPECT_EQ(auth.Check(method, std::nullopt).code(), absl::StatusCode::kUnauthenticated) << method;
  }
  AuthExemptions none;
  none.health = false;
  none.reflection = false;
  EXPECT_EQ(Authenticator(none).Check("/inference.GRPCInferenceService/ServerLive", std::nullopt).code(),
            absl::StatusCode::kUnauthenticated);
}

TEST(TokenAuthenticator, MissingWrongOrOtherSchemeIsUnauthenticated) {
  const auto auth = Authenticator();
  const char* method = "/elliptical.v1.InferenceService/Generate";
  for (const absl::Status& s :
       {auth.Check(method, std::nullopt), auth.Check(method, "Bearer tok-3"),
        auth.Check(method, "Basic dG9rLTE="), auth.Check(method, "Bearer"),
        auth.Check(method, "tok-1"), auth.Check(method, "Bearertok-1")}) {
    EXPECT_EQ(s.code(), absl::StatusCode::kUnauthenticated) << s;
    EXPECT_EQ(s.message().find("tok-"), std::string::npos) << "echoes the token: " << s;
  }
  EXPECT_NE(auth.Check(method, std::nullopt).message().find("authorization: Bearer"), std::string::npos);
}

TEST(TokenAuthenticator, HealthExemptByDefaultReflectionNot) {
  const auto auth = Authenticator();
  EXPECT_TRUE(auth.Check("/grpc.health.v1.Health/Check", std::nullopt).ok());
  EXPECT_FALSE(auth.Check("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", std::nullopt).ok());
  // A look-alike service name is not exempt.
  EXPECT_FALSE(auth.Check("/grpc.health.v1.HealthX/Check", std::nullopt).ok());
}

TEST(TokenAuthenticator, ExemptionPolicy) {
  auto none = ParseAuthExempt("none");
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(Authenticator(*none).Check("/grpc.health.v1.Health/Check", std::nullopt).ok());
  auto both = ParseAuthExempt("health, reflection");
  ASSERT_TRUE(both.ok());
  EXPECT_TRUE(Authenticator(*both).Check("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
                                         std::nullopt).ok());
  EXPECT_FALSE(Authenticator(*both).Check("/elliptical.v1.InferenceService/ListModels", std::nullopt).ok());
  EXPECT_FALSE(ParseAuthExempt("helth").ok());
}

constexpr char kLoad[] = "/inference.GRPCInferenceService/RepositoryModelLoad";

RepositoryAccess Access(RepositoryAccessMode mode, bool repository_tokens, bool inference_tokens) {
  std::optional<SecretSet> tokens;
  if (repository_tokens) tokens.emplace(std::vector<std::string>{"repo-1"});
  auto access = RepositoryAccess::Create(mode, std::move(tokens), inference_tokens);
  EXPECT_TRUE(access.ok()) << access.status();
  return *std::move(access);
}

TEST(RepositoryAccess, ParsesTheFlagAndNamesItWhenWrong) {
  EXPECT_EQ(*ParseRepositoryAccess("auto"), RepositoryAccessMode::kAuto);
  EXPECT_EQ(*ParseRepositoryAccess("repository_tokens"), RepositoryAccessMode::kRepositoryTokens);
  EXPECT_EQ(*ParseRepositoryAccess("inference_tokens"), RepositoryAccessMode::kInferenceTokens);
  EXPECT_EQ(*ParseRepositoryAccess("none"), RepositoryAccessMode::kNone);
  auto bad = ParseRepositoryAccess("tokens");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("--repository_access=tokens"), std::string::npos) << bad.status();
}

TEST(RepositoryAccess, OnlyLoadAndUnloadAreChanges) {
  for (const char* method : {"/inference.GRPCInferenceService/RepositoryModelLoad",
                             "/inference.GRPCInferenceService/RepositoryModelUnload",
                             "/elliptical.v1.InferenceService/LoadModel", "/elliptical.v1.InferenceService/UnloadModel"}) {
    EXPECT_TRUE(ChangesRepository(method)) << method;
  }
  for (const char* method : {"/inference.GRPCInferenceService/RepositoryIndex",
                             "/elliptical.v1.InferenceService/RepositoryIndex",
                             "/inference.GRPCInferenceService/ModelInfer", "/inference.GRPCInferenceService/RepositoryModelLoadX",
                             "/elliptical.v1.InferenceService/LoadModel/", ""}) {
    EXPECT_FALSE(ChangesRepository(method)) << method;
  }
  // The index and every other call pass whatever the rule.
  const auto none = Access(RepositoryAccessMode::kNone, false, true);
  EXPECT_TRUE(none.Check("/inference.GRPCInferenceService/RepositoryIndex", std::nullopt).ok());
  EXPECT_TRUE(none.Check("/elliptical.v1.InferenceService/Classify", std::nullopt).ok());
  EXPECT_EQ(none.Check(kLoad, "Bearer repo-1").code(), absl::StatusCode::kPermissionDenied);
}

TEST(RepositoryAccess, AutoWithNoTokensAtAllIsOpen) {
  const auto open = Access(RepositoryAccessMode::kAuto, false, false);
  EXPECT_TRUE(open.open());
  EXPECT_TRUE(open.Check(kLoad, std::nullopt).ok());
  EXPECT_TRUE(open.CheckChange("Bearer anything").ok());
}

TEST(RepositoryAccess, AutoWithInferenceTokensOnlyRefusesNamingTheFlags) {
  const auto access = Access(RepositoryAccessMode::kAuto, false, true);
  EXPECT_FALSE(access.open());
  const absl::Status s = access.CheckChange("Bearer tok-1");
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_NE(s.message().find("--repository_tokens_file"), std::string::npos) << s;
  EXPECT_NE(s.message().find("--auth_tokens_file"), std::string::npos) << s;
  EXPECT_EQ(s.message().find("tok-1"), std::string::npos) << "echoes the token: " << s;
}

TEST(RepositoryAccess, AutoWithRepositoryTokensNeedsOne) {
  for (bool inference_tokens : {false, true}) {
    const auto access = Access(RepositoryAccessMode::kAuto, true, inference_tokens);
    EXPECT_TRUE(access.CheckChange("Bearer repo-1").ok());
    EXPECT_TRUE(access.CheckChange("  bearer   repo-1 ").ok());
    for (const absl::Status& s : {access.CheckChange(std::nullopt), access.CheckChange("Bearer tok-1"),
                                  access.CheckChange("Basic cmVwby0x"), access.CheckChange("repo-1"),
                                  access.CheckChange("Bearer repo-12")}) {
      EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied) << s;
      EXPECT_NE(s.message().find("--repository_tokens_file"), std::string::npos) << s;
      EXPECT_EQ(s.message().find("repo-1"), std::string::npos) << "echoes the token: " << s;
      EXPECT_EQ(s.message().find("tok-1"), std::string::npos) << "echoes the token: " << s;
    }
  }
}

TEST(RepositoryAccess, ExplicitModes) {
  // inference_tokens: whatever the token check admitted (it ran first) may change.
  EXPECT_TRUE(Access(RepositoryAccessMode::kInferenceTokens, false, true).CheckChange("Bearer tok-1").ok());
  EXPECT_TRUE(Access(RepositoryAccessMode::kInferenceTokens, false, false).open());
  // repository_tokens: a repository token, even where no inference token is needed.
  const auto repo = Access(RepositoryAccessMode::kRepositoryTokens, true, false);
  EXPECT_FALSE(repo.open());
  EXPECT_TRUE(repo.CheckChange("Bearer repo-1").ok());
  EXPECT_EQ(repo.CheckChange(std::nullopt).code(), absl::StatusCode::kPermissionDenied);
  // none: nothing, not even a repository token.
  const absl::Status none = Access(RepositoryAccessMode::kNone, true, true).CheckChange("Bearer repo-1");
  EXPECT_EQ(none.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_NE(none.message().find("--repository_access=none"), std::string::npos) << none;
  // repository_tokens without the file cannot start.
  auto missing = RepositoryAccess::Create(RepositoryAccessMode::kRepositoryTokens, std::nullopt, true);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(missing.status().message().find("--repository_tokens_file"), std::string::npos);
}

TEST(BearerToken, SchemeAndSpaces) {
  EXPECT_EQ(BearerToken("Bearer abc").value_or("-"), "abc");
  EXPECT_EQ(BearerToken(" BEARER   abc ").value_or("-"), "abc");
  EXPECT_FALSE(BearerToken("Bearer").has_value());
  EXPECT_FALSE(BearerToken("Bearer   ").has_value());
  EXPECT_FALSE(BearerToken("Bearerabc").has_value());
  EXPECT_FALSE(BearerToken("Basic abc").has_value());
}

}  // namespace
}  // namespace elliptical::server::security
