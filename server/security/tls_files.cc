#include "server/security/tls_files.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <memory>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "server/security/credential_files.h"

namespace elliptical::server::security {
namespace {

struct BioFree { void operator()(BIO* b) const { BIO_free(b); } };
struct X509Free { void operator()(X509* x) const { X509_free(x); } };
struct KeyFree { void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); } };
using Bio = std::unique_ptr<BIO, BioFree>;
using Cert = std::unique_ptr<X509, X509Free>;
using Key = std::unique_ptr<EVP_PKEY, KeyFree>;

Bio MemoryBio(const std::string& pem) {
  return Bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

std::string FlagFile(const char* flag, const std::string& path) {
  return absl::StrCat("--", flag, "=", path);
}

// The first certificate of a PEM file, or an error naming the flag and the file.
absl::StatusOr<Cert> FirstCertificate(const char* flag, const std::string& path,
                                      const std::string& pem) {
  Bio bio = MemoryBio(pem);
  Cert cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  ERR_clear_error();
  if (!cert) {
    return absl::InvalidArgumentError(
        absl::StrCat(FlagFile(flag, path), ": no PEM certificate (-----BEGIN CERTIFICATE-----) in the file"));
  }
  return cert;
}

}  // namespace

absl::StatusOr<TlsMaterial> LoadTlsMaterial(const TlsFiles& files) {
  if (files.cert_file.empty() != files.key_file.empty()) {
    return absl::InvalidArgumentError(
        "--tls_cert_file and --tls_key_file go together: give both for TLS, or neither");
  }
  if (files.cert_file.empty()) {
    return absl::InvalidArgumentError(
        "--tls_client_ca_file needs TLS: give --tls_cert_file and --tls_key_file too");
  }
  TlsMaterial m;
  absl::StatusOr<std::string> cert_pem = ReadFlagFile("tls_cert_file", files.cert_file);
  if (!cert_pem.ok()) return cert_pem.status();
  m.cert_chain_pem = *std::move(cert_pem);
  absl::StatusOr<Cert> cert = FirstCertificate("tls_cert_file", files.cert_file, m.cert_chain_pem);
  if (!cert.ok()) return cert.status();
  if (X509_cmp_current_time(X509_get0_notAfter(cert->get())) < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        FlagFile("tls_cert_file", files.cert_file), ": the certificate has expired"));
  }

  absl::StatusOr<std::string> key_pem = ReadFlagFile("tls_key_file", files.key_file);
  if (!key_pem.ok()) return key_pem.status();
  m.private_key_pem = *std::move(key_pem);
  {
    Bio bio = MemoryBio(m.private_key_pem);
    // An empty passphrase callback result: an encrypted key fails here instead of prompting.
    Key key(PEM_read_bio_PrivateKey(bio.get(), nullptr,
                                    [](char*, int, int, void*) { return 0; }, nullptr));
    ERR_clear_error();
    if (!key) {
      return absl::InvalidArgumentError(absl::StrCat(
          FlagFile("tls_key_file", files.key_file),
          ": no unencrypted PEM private key in the file (an encrypted key is not supported)"));
    }
    if (X509_check_private_key(cert->get(), key.get()) != 1) {
      ERR_clear_error();
      return absl::InvalidArgumentError(absl::StrCat(
          FlagFile("tls_key_file", files.key_file), " is not the key of the certificate in ",
          FlagFile("tls_cert_file", files.cert_file)));
    }
  }

  if (!files.client_ca_file.empty()) {
    absl::StatusOr<std::string> ca_pem = ReadFlagFile("tls_client_ca_file", files.client_ca_file);
    if (!ca_pem.ok()) return ca_pem.status();
    m.client_ca_pem = *std::move(ca_pem);
    absl::StatusOr<Cert> ca = FirstCertificate("tls_client_ca_file", files.client_ca_file, m.client_ca_pem);
    if (!ca.ok()) return ca.status();
  }
  return m;
}

}  // namespace elliptical::server::security
