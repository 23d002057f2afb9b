#!/usr/bin/env bash
# Print the .deb's Depends: the Debian packages that provide the system libraries the
# bundle's binaries link to directly (their DT_NEEDED entries, as dpkg-shlibdeps counts) (Qt's xcb platform plugin: libxcb-cursor0,
# libxkbcommon-x11-0, ...; libc6, libGL), found with ldd and dpkg -S on the build
# machine. Libraries the bundle carries itself are not counted. A library that is
# missing on the build machine is an error: its package would be missing from Depends.
#
#   packaging/linux/deb_depends.sh BUNDLE_DIR
set -euo pipefail
bundle=$1
declare -A bundled=() packages=() owner=()
missing=()
while IFS= read -r -d '' file; do bundled[$(basename "$file")]=1; done \
    < <(find "$bundle" -type f -name '*.so*' -print0)
while IFS= read -r -d '' file; do
    head -c 4 "$file" | grep -q $'\x7fELF' || continue
    needed=" $(readelf -d "$file" 2>/dev/null | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' ')"
    while read -r lib _arrow path _rest; do
        [[ "$needed" == *" $lib "* ]] || continue # a dependency of a dependency
        [[ -n "${bundled[$lib]:-}" ]] && continue
        if [[ "$path" == "not" ]]; then
            missing+=("$lib (needed by ${file#"$bundle"/})")
            continue
        fi
        [[ "$path" == /* && "$path" != "$bundle"* ]] || continue
        if [[ -z "${owner[$path]+set}" ]]; then # dpkg -S is slow: once per library
            package=$(dpkg -S "$path" 2>/dev/null || dpkg -S "$(readlink -f "$path")" 2>/dev/null || true)
            owner[$path]=${package%%:*}
        fi
        [[ -n "${owner[$path]}" ]] && packages[${owner[$path]}]=1
    done < <(ldd "$file" 2>/dev/null | grep '=>' || true)
done < <(find "$bundle" -type f \( -name '*.so*' -o -perm -u+x \) -print0)
if ((${#missing[@]})); then
    printf 'deb_depends: not installed on the build machine, so not in Depends:\n' >&2
    printf '  %s\n' "${missing[@]}" | sort -u >&2
    exit 1
fi
printf '%s\n' "${!packages[@]}" | sort | paste -sd, | sed 's/,/, /g'
