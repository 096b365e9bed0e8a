#include "server/http/peer_connection.h"

#include <dirent.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <cstdlib>
#include <string>

namespace elliptical::server {
namespace {

// The numeric host and the port of a socket address, written as cpp-httplib writes them into
// Request::remote_addr / local_addr.
bool HostAndPort(const sockaddr_storage& addr, socklen_t len, std::string* host, int* port) {
  char h[NI_MAXHOST];
  char p[NI_MAXSERV];
  if (getnameinfo(reinterpret_cast<const sockaddr*>(&addr), len, h, sizeof h, p, sizeof p,
                  NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
    return false;
  }
  *host = h;
  *port = std::atoi(p);
  return true;
}

bool IsConnection(int fd, const httplib::Request& request) {
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) return false;
  sockaddr_storage addr;
  socklen_t len = sizeof addr;
  std::string host;
  int port = -1;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0 || !HostAndPort(addr, len, &host, &port) ||
      port != request.local_port || host != request.local_addr) {
    return false;
  }
  len = sizeof addr;
  return getpeername(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0 && HostAndPort(addr, len, &host, &port) &&
         port == request.remote_port && host == request.remote_addr;
}

}  // namespace

std::optional<PeerConnection> PeerConnection::Of(const httplib::Request& request) {
  if (request.remote_port <= 0 || request.local_port <= 0) return std::nullopt;
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return std::nullopt;
  std::optional<PeerConnection> found;
  const int listing = dirfd(dir);
  while (dirent* entry = readdir(dir)) {
    char* end = nullptr;
    const long fd = std::strtol(entry->d_name, &end, 10);
    if (end == entry->d_name || *end != '\0' || fd == listing) continue;
    if (IsConnection(static_cast<int>(fd), request)) {
      found = PeerConnection(static_cast<int>(fd));
      break;
    }
  }
  closedir(dir);
  return found;
}

bool PeerConnection::Closed() const {
  pollfd p{fd_, POLLRDHUP, 0};
  if (poll(&p, 1, 0) <= 0) return false;
  return (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0;
}

}  // namespace elliptical::server
