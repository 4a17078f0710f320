# Shared by scripts/test and scripts/demo: the Debian 12 packages kvsfs needs, and an installer
# that adds only the missing ones (as root, with apt-get).

KVSFS_BUILD_PACKAGES=(
  meson ninja-build pkg-config gcc g++
  libfuse3-dev fuse3 libcurl4-openssl-dev libssl-dev libjansson-dev libwebm-dev
)
KVSFS_RUN_PACKAGES=(
  python3 ffmpeg curl
)
KVSFS_TEST_PACKAGES=(
  clang libclang-rt-14-dev
  python3-pytest python3-botocore python3-boto3 awscli
  mpv rsync attr openssl procps psmisc
  python3-prometheus-client debhelper lintian dpkg-dev fakeroot
  radosgw ceph-mon ceph-osd ceph-common
  chromium
  mkvtoolnix
)

# kvsfs_install_packages PKG...: installs those of PKG... that are missing.
kvsfs_install_packages() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  printf '\n=== installing: %s\n' "${missing[*]}"
  if [[ $(id -u) -ne 0 ]]; then
    echo "missing Debian packages (run as root to install them): ${missing[*]}" >&2
    return 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# kvsfs_ensure_npm: npm (for hls.js in the browser tests), from Debian when no node is installed.
kvsfs_ensure_npm() {
  command -v npm >/dev/null 2>&1 && return 0
  kvsfs_install_packages nodejs npm
}
