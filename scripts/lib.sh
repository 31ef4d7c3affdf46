# Shared by the scripts in this folder: install what is missing, idempotently.
# Sourced, not run.

# Runs a command as root: directly when we are root, else through sudo.
as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# ensure_packages PKG...: installs the Debian packages that are not installed.
ensure_packages() {
  missing=""
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" ||
      missing="$missing $pkg"
  done
  [ -z "$missing" ] && return 0
  echo "==> installing:$missing"
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get update -q
  # With recommends, as the packages were tested (Wine needs some of them).
  # shellcheck disable=SC2086
  as_root apt-get install -y -q $missing
}

# The packages a native build with tests needs.
NATIVE_PACKAGES="cmake ninja-build gcc g++ make pkg-config googletest libssl-dev"
# What the Windows cross build and its Wine test run add.
WINDOWS_PACKAGES="gcc-mingw-w64-x86-64 g++-mingw-w64-x86-64 wine wine64"
# What the aarch64 cross build (task switch tests under qemu-user) adds.
ARM_PACKAGES="gcc-aarch64-linux-gnu g++-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user"
