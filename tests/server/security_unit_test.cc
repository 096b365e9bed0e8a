// The token and metrics-user files, the constant-time compare and the per-call decision of
// server/security/, as plain code (the end-to-end checks are tests/integration/security_test.py).
#include <gtest/gtest.h>

#include <string>

#include "server/security/constant_time.h"
#include "server/security/credential_files.h"
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

}  // namespace
}  // namespace elliptical::server::security
