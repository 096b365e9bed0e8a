#!/usr/bin/env bash
# Fetches Debian's source packages of the image decoder's libraries (libjpeg-turbo, libpng1.6,
# libwebp) into DEST/<source package>/, patched as Debian builds them, so that the image_decoder
# fuzz target can compile them with ASan, UBSan and coverage (tests/fuzz/CMakeLists.txt,
# ELLIPTICAL_FUZZ_DECODER_SOURCES). The version installed here is fetched when the archive still
# holds it, else the archive's current one of the same package (a newer security update of the
# same upstream release); DEST/versions.txt says which.
#
#   tests/fuzz/fetch_decoder_sources.sh DEST
#
# Uses a private apt state (the machine's sources and lists stay as they are) and needs network
# access to deb.debian.org. Idempotent: a package already unpacked in DEST is kept.
set -euo pipefail
DEST="${1:?usage: fetch_decoder_sources.sh DEST}"
mkdir -p "$DEST"
DEST="$(cd "$DEST" && pwd)"
# source package -> the -dev package whose installed version decides
declare -A DEV=([libjpeg-turbo]=libjpeg62-turbo-dev [libpng1.6]=libpng-dev [libwebp]=libwebp-dev)

missing=()
for src in "${!DEV[@]}"; do [[ -f "$DEST/$src/.complete" ]] || missing+=("$src"); done
((${#missing[@]})) || { echo "[decoder sources] complete in $DEST"; exit 0; }

apt_dir="$(mktemp -d)"
trap 'rm -rf "$apt_dir"' EXIT
mkdir -p "$apt_dir/sources" "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/files"
for suites in "debian|bookworm bookworm-updates" "debian-security|bookworm-security"; do
  printf 'Types: deb-src\nURIs: http://deb.debian.org/%s\nSuites: %s\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
    "${suites%%|*}" "${suites#*|}" > "$apt_dir/sources/${suites%%|*}.sources"
done
apt_opts=(-o "Dir::Etc::SourceList=/dev/null" -o "Dir::Etc::SourceParts=$apt_dir/sources"
          -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache"
          -o "APT::Sandbox::User=$(id -un)")
apt-get "${apt_opts[@]}" -qq update

# Downloads the files of `src`=`version` into $apt_dir/files and prints the .dsc's name; fails
# when the archive lacks the version or one of its files (mirrors can lag behind the index).
download() {
  local src="$1" version="$2" uris uri name hash dsc=""
  uris="$(cd "$apt_dir/files" && apt-get "${apt_opts[@]}" -qq source --print-uris "$src=$version" 2>/dev/null)" || return 1
  # Each line: 'URI' NAME SIZE SHA256:HASH. A security update's upstream tarball may sit only in
  # the main archive's pool, and signatures (.asc) are optional: the .dsc's hashes are checked.
  while read -r uri name _ hash; do
    [[ -n $name ]] || continue
    uri="${uri//\'/}"
    [[ -f "$apt_dir/files/$name" ]] || curl -fsSL -o "$apt_dir/files/$name" "$uri" 2>/dev/null ||
      curl -fsSL -o "$apt_dir/files/$name" "${uri/debian-security\/pool\/updates/debian\/pool}" 2>/dev/null ||
      { [[ $name == *.asc ]] && continue; rm -f "$apt_dir/files/$name"; return 1; }
    echo "${hash#SHA256:}  $apt_dir/files/$name" | sha256sum --quiet -c - || return 1
    [[ $name == *.dsc ]] && dsc="$name"
  done <<< "$uris"
  [[ -n $dsc ]] && echo "$dsc"
}

for src in "${missing[@]}"; do
  installed="$(dpkg-query -W -f='${source:Version}' "${DEV[$src]}")"
  dsc=""
  for version in "$installed" $(apt-cache "${apt_opts[@]}" showsrc "$src" | sed -n 's/^Version: //p'); do
    dsc="$(download "$src" "$version")" && break
  done
  [[ -n $dsc ]] || { echo "[decoder sources] cannot download any version of $src" >&2; exit 1; }
  rm -rf "${DEST:?}/$src"
  (cd "$apt_dir/files" && dpkg-source --no-check -x "$dsc" "$DEST/$src" > /dev/null)
  rm -f "$DEST"/*.orig.tar.*  # dpkg-source leaves a link to the upstream tarball beside it
  version="${dsc#"${src}"_}"
  echo "$src ${version%.dsc} (installed: $installed)" >> "$DEST/versions.txt"
  touch "$DEST/$src/.complete"
  echo "[decoder sources] $src ${version%.dsc} in $DEST/$src"
done
