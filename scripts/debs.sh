# Debian package helpers, sourced by scripts/test.sh, packaging/build_linux.sh and
# packaging/smoke_test.sh (bash).

# missing_debs PKG...: print, one per line, the packages that are not installed
# (all of them where there is no dpkg).
missing_debs() {
    local deb
    for deb in "$@"; do
        if ! command -v dpkg-query >/dev/null 2>&1 ||
            ! dpkg-query -W -f='${Status}' "$deb" 2>/dev/null | grep -q 'install ok installed'; then
            echo "$deb"
        fi
    done
}

# can_apt: true as root with apt-get, unless RAPIDQA_NO_APT=1.
can_apt() {
    [[ "${RAPIDQA_NO_APT:-0}" != 1 && "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1
}

# apt_install PKG...: refresh the package lists and install the packages, quietly.
apt_install() {
    DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" \
            >/dev/null
}
