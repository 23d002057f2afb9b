#!/usr/bin/env bash
# Build RapidQA.app and its .dmg (run on macOS 12+, Apple silicon or Intel):
#
#   packaging/macos/build_macos.sh
#
# Needs Python >= 3.11 (python.org or Homebrew), network access to PyPI and the Xcode
# command line tools (codesign, hdiutil). Produces dist/RapidQA-<version>-macos-<arch>.dmg
# holding RapidQA.app and a link to /Applications.
# Steps: build/venv (torch from PyPI: on macOS that is the CPU/MPS build; RapidQA; the
# offline default models; PyInstaller; Pillow, which turns the PNG icon into .icns),
# icons, PyInstaller (packaging/rapidqa.spec builds RapidQA.app), licences into the
# .app, an ad-hoc signature, the .dmg.
# Distribution outside your own machines needs a Developer ID: set CODESIGN_IDENTITY
# (and notarize the .dmg with `xcrun notarytool submit --wait`, then `xcrun stapler
# staple`); without it the app is signed ad hoc and Gatekeeper asks the user to
# confirm the first start (right-click > Open).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT=$(pwd)
say() { printf 'build: %s\n' "$*"; }
[[ "$(uname -s)" == Darwin ]] || { echo "build: run this on macOS" >&2; exit 1; }

export RAPIDQA_VENV=build/venv RAPIDQA_EXTRAS=build
bash scripts/setup.sh
PY=$ROOT/build/venv/bin/python
"$PY" -m pip install --quiet "pillow>=10"
VERSION=$("$PY" -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
ARCH=$(uname -m)

say "icons"
QT_QPA_PLATFORM=offscreen "$PY" packaging/make_icons.py build/icons >/dev/null

say "PyInstaller (several minutes)"
WORK=$ROOT/build/pyinstaller
rm -rf "$WORK/dist"
"$PY" -m PyInstaller --noconfirm --clean --log-level WARN \
    --distpath "$WORK/dist" --workpath "$WORK/work" packaging/rapidqa.spec
APP=$WORK/dist/RapidQA.app
[[ -d "$APP" ]] || { echo "build: PyInstaller did not produce $APP" >&2; exit 1; }

say "licences"
"$PY" packaging/collect_licenses.py "$APP/Contents/Resources" "$WORK/work/rapidqa"

say "a quick check of the frozen CLI"
"$APP/Contents/MacOS/rapidqa" ask "$APP/Contents/Resources/resources/sample/harrow-point-handbook.pdf" \
    -q "When was the Harrow Point light first exhibited?" --max-new-tokens 16

say "signing (${CODESIGN_IDENTITY:-ad hoc})"
if [[ -n "${CODESIGN_IDENTITY:-}" ]]; then # hardened runtime, as notarization requires
    codesign --force --deep --timestamp --options runtime \
        --entitlements packaging/macos/entitlements.plist --sign "$CODESIGN_IDENTITY" "$APP"
else
    codesign --force --deep --sign - "$APP"
fi
codesign --verify --deep --strict "$APP"

DMG=dist/RapidQA-$VERSION-macos-$ARCH.dmg
say "$DMG"
STAGE=$ROOT/build/dmg
rm -rf "$STAGE" "$DMG"
mkdir -p "$STAGE" dist
cp -R "$APP" "$STAGE/"
ln -s /Applications "$STAGE/Applications"
hdiutil create -volname "RapidQA $VERSION" -srcfolder "$STAGE" -fs HFS+ -format UDZO -ov "$DMG"
ls -lh "$DMG"
