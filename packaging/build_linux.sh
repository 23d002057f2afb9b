#!/usr/bin/env bash
# Build RapidQA's Linux installers into dist/ in one command:
#
#   packaging/build_linux.sh            the .deb, the .tar.gz (and an AppImage when
#                                       appimagetool is on PATH)
#   packaging/build_linux.sh --no-deb   the .tar.gz only
#
# Steps: the build environment (build/venv: CPU torch, RapidQA, the offline default
# models, PyInstaller; the same scripts/setup.sh as the dev environment), the icons,
# the PyInstaller one-folder app (packaging/rapidqa.spec), the licences of what it
# bundles, then the archives. Needs Python >= 3.11, network access to PyPI for the
# first run, and dpkg-deb for the .deb (Debian/Ubuntu). About 18 min on 2 cores.
# Then: packaging/smoke_test.sh checks the .deb.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
say() { printf 'build: %s\n' "$*"; }
fail() { printf 'build: error: %s\n' "$*" >&2; exit 1; }

make_deb=1
for arg in "$@"; do
    case "$arg" in
        --no-deb) make_deb=0 ;;
        -h | --help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) fail "unknown option $arg (see --help)" ;;
    esac
done
[[ "$(uname -s)" == Linux ]] || fail "this script builds the Linux installers; see packaging/README.md for Windows and macOS"
if ((make_deb)) && ! command -v dpkg-deb >/dev/null; then
    fail "dpkg-deb is not installed (Debian/Ubuntu: apt-get install dpkg-dev), or pass --no-deb"
fi

# Debian packages the build needs: the libraries of Qt's Wayland plugins (deb_depends.sh
# finds every linked library's package on this machine, so they must be installed),
# and for the smoke test Xvfb and desktop-file-validate.
build_debs=(libwayland-client0 libwayland-cursor0 libwayland-egl1 xvfb desktop-file-utils)
source scripts/debs.sh
if command -v dpkg-query >/dev/null; then
    mapfile -t missing < <(missing_debs "${build_debs[@]}")
    if ((${#missing[@]})); then
        can_apt || fail "install these Debian packages first: sudo apt-get install ${missing[*]}"
        say "installing Debian packages: ${missing[*]}"
        apt_install "${missing[@]}" || fail "could not install ${missing[*]}"
    fi
fi

ARCH=$(uname -m)
case "$ARCH" in x86_64) DEB_ARCH=amd64 ;; aarch64) DEB_ARCH=arm64 ;; *) DEB_ARCH=$ARCH ;; esac

# 1. The build environment: the app's dependencies with CPU torch, plus PyInstaller.
export RAPIDQA_VENV=build/venv RAPIDQA_EXTRAS=build
bash scripts/setup.sh
PY=$ROOT/build/venv/bin/python
VERSION=$("$PY" -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
NAME=rapidqa-$VERSION-linux-$ARCH
WORK=$ROOT/build/pyinstaller
APP=$WORK/dist/rapidqa
start=$SECONDS

# 2. Icons from the SVG.
say "icons"
QT_QPA_PLATFORM=offscreen "$PY" packaging/make_icons.py build/icons >/dev/null

# 3. The one-folder app.
say "PyInstaller (several minutes)"
rm -rf "$WORK/dist"
"$PY" -m PyInstaller --noconfirm --log-level WARN \
    --distpath "$WORK/dist" --workpath "$WORK/work" packaging/rapidqa.spec
[[ -x "$APP/rapidqa" ]] || fail "PyInstaller did not produce $APP/rapidqa"

# 4. Licences of everything bundled; the icon and the desktop entry travel with it.
say "licences"
"$PY" packaging/collect_licenses.py "$APP" "$WORK/work/rapidqa"
install -m 644 resources/icons/rapidqa.svg "$APP/rapidqa.svg"
install -m 644 packaging/linux/rapidqa.desktop "$APP/rapidqa.desktop"
install -m 644 packaging/linux/README-archive.txt "$APP/README.txt"

mkdir -p dist
rm -f dist/rapidqa-*-linux-* dist/rapidqa_*.deb

# 5. The .tar.gz: unpack anywhere and run ./rapidqa-<version>/rapidqa.
say "dist/$NAME.tar.gz"
if command -v pigz >/dev/null; then gz=(pigz -6); else gz=(gzip -6); fi
tar -C "$WORK/dist" --owner=0 --group=0 --transform "s,^rapidqa,$NAME," -cf - rapidqa |
    "${gz[@]}" >"dist/$NAME.tar.gz.part"
mv "dist/$NAME.tar.gz.part" "dist/$NAME.tar.gz"

# 6. The .deb: /opt/rapidqa, /usr/bin/rapidqa, a desktop entry and icons.
if ((make_deb)); then
    DEB=dist/rapidqa_${VERSION}_$DEB_ARCH.deb
    say "$DEB"
    STAGE=$ROOT/build/deb
    rm -rf "$STAGE"
    mkdir -p "$STAGE/DEBIAN" "$STAGE/opt" "$STAGE/usr/bin" "$STAGE/usr/share/applications" \
        "$STAGE/usr/share/doc/rapidqa" "$STAGE/usr/share/icons/hicolor/scalable/apps"
    cp -a "$APP" "$STAGE/opt/rapidqa"
    rm -f "$STAGE/opt/rapidqa/rapidqa.desktop" "$STAGE/opt/rapidqa/README.txt"
    ln -s ../../opt/rapidqa/rapidqa "$STAGE/usr/bin/rapidqa" # relative: works in a chroot too
    install -m 644 packaging/linux/rapidqa.desktop "$STAGE/usr/share/applications/"
    install -m 644 resources/icons/rapidqa.svg "$STAGE/usr/share/icons/hicolor/scalable/apps/"
    for size in 16 24 32 48 64 128 256 512; do
        dir=$STAGE/usr/share/icons/hicolor/${size}x$size/apps
        mkdir -p "$dir"
        install -m 644 "build/icons/rapidqa-$size.png" "$dir/rapidqa.png"
    done
    cat >"$STAGE/usr/share/doc/rapidqa/copyright" <<EOF
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: RapidQA
Comment: RapidQA bundles PyMuPDF (AGPL-3.0); the whole is distributed under the
 AGPL-3.0, whose text is in /opt/rapidqa/LICENSE.txt. The licence of every bundled
 component (Python packages, models, Qt, system libraries) is in
 /opt/rapidqa/licenses/, listed in /opt/rapidqa/licenses/README.md.

Files: *
Copyright: RapidQA contributors
License: AGPL-3.0
 See /opt/rapidqa/LICENSE.txt.
EOF
    depends=$(bash packaging/linux/deb_depends.sh "$STAGE/opt/rapidqa")
    installed_kb=$(du -sk --exclude=DEBIAN "$STAGE" | cut -f1)
    sed -e "s/@VERSION@/$VERSION/" -e "s/@ARCH@/$DEB_ARCH/" -e "s/@SIZE@/$installed_kb/" \
        -e "s/@DEPENDS@/$depends/" -e "s/@MAINTAINER@/${RAPIDQA_MAINTAINER:-RapidQA contributors <rapidqa@localhost>}/" \
        packaging/linux/control.in >"$STAGE/DEBIAN/control"
    chmod -R u=rwX,go=rX "$STAGE"
    chmod 755 "$STAGE/opt/rapidqa/rapidqa"
    # xz: the smallest .deb (about 8 of the 18 min on 2 cores); every core.
    dpkg-deb --root-owner-group -Zxz -z6 --threads-max="$(nproc)" --build "$STAGE" "$DEB.part" >/dev/null
    mv "$DEB.part" "$DEB"
fi

# 7. AppImage: needs appimagetool (and its runtime), which come from GitHub, not a
#    package registry; built only where it is installed.
if command -v appimagetool >/dev/null; then
    APPDIR=$ROOT/build/AppDir
    say "dist/$NAME.AppImage"
    rm -rf "$APPDIR"
    mkdir -p "$APPDIR/usr"
    cp -a "$APP" "$APPDIR/usr/rapidqa"
    install -m 644 packaging/linux/rapidqa.desktop "$APPDIR/rapidqa.desktop"
    install -m 644 build/icons/rapidqa-256.png "$APPDIR/rapidqa.png"
    printf '#!/bin/sh\nexec "$(dirname "$(readlink -f "$0")")/usr/rapidqa/rapidqa" "$@"\n' >"$APPDIR/AppRun"
    chmod 755 "$APPDIR/AppRun"
    ARCH=$ARCH appimagetool --no-appstream "$APPDIR" "dist/$NAME.AppImage"
else
    say "no AppImage: appimagetool is not installed (it is downloaded from GitHub; see packaging/README.md)"
fi

say "done in $(((SECONDS - start) / 60)) min $(((SECONDS - start) % 60)) s"
du -h "$APP" --max-depth=0 | sed 's/^/build: app folder /'
ls -l dist/ | awk 'NR > 1 { printf "build: %s  %.0f MB\n", $9, $5 / 1e6 }'
