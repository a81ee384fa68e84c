#!/usr/bin/env bash
# Checks that the firmware's imports point down its layers (README, "Layout"):
#
#   main.rs  ->  app  ->  net  ->  ethernet  ->  board
#
# Each folder of firmware/src may name (as `crate::X`, or `super::X` from its
# top) only the layers listed for it below; the app and main.rs never name the
# driver or smoltcp (they go through `net`). The host-tested library
# (firmware/src/portable, `firmware::`) is a crate of its own and cannot name
# the binary's modules at all. Comment lines are skipped; every other line
# counts, so a path written out in code (`crate::net::watch(..)`) is caught
# as well as a `use`.
#
# Prints every upward import with its file and line, and fails if there is one.
set -euo pipefail
cd "$(dirname "$0")/.."

src=firmware/src

layers=" board ethernet net app "
# What each layer may name, itself included.
declare -A allowed=(
    [board]="board"
    [ethernet]="board ethernet"
    [net]="board ethernet net"
    [app]="board net app"
    [main.rs]="board net app"
)
# Layers that must not name smoltcp: it stays behind `net`.
no_smoltcp="app main.rs"

status=0
report() {
    echo "check-layers: $1" >&2
    status=1
}

# Prints `LINE:TEXT` for the code lines of $1 (comment lines dropped) that name
# a module path, with `super::` paths that leave a layer's folder rewritten as
# `crate::` (only these lines are looked at one by one: it keeps the check fast).
code_lines() {
    local file=$1 up='super::super::'
    case "$file" in
    */mod.rs | "$src/main.rs") up='super::' ;;
    esac
    grep -nvE '^\s*//' "$file" | sed -E "s/(^|[^:])${up}/\\1crate::/g" |
        grep -E 'crate::|(^|[^:a-z_])ethernet::' || true
}

for layer in "${!allowed[@]}"; do
    if [ "$layer" = main.rs ]; then
        files=("$src/main.rs")
    else
        mapfile -t files < <(find "$src/$layer" -name '*.rs' | sort)
    fi
    for file in "${files[@]}"; do
        while IFS= read -r hit; do
            line=${hit%%:*}
            text=${hit#*:}
            while IFS= read -r target; do
                # Only the layers themselves are checked (`crate::foo` for an
                # item of main.rs is not a layer).
                case "$layers" in
                *" $target "*) ;;
                *) continue ;;
                esac
                case " ${allowed[$layer]} " in
                *" $target "*) ;;
                *) report "$file:$line: $layer may not use $target:$text" ;;
                esac
            done < <(grep -oE 'crate::[a-z_]+' <<<"$text" | sed 's/^crate:://' | sort -u)
            # main.rs names its modules without `crate::`.
            if [ "$layer" = main.rs ] && grep -qE '(^|[^:a-z_])ethernet::' <<<"$text"; then
                report "$file:$line: main.rs may not use the driver (go through net):$text"
            fi
        done < <(code_lines "$file")
        if [[ " $no_smoltcp " == *" $layer "* ]]; then
            while IFS= read -r hit; do
                report "$file:${hit%%:*}: $layer may not use smoltcp (go through net):${hit#*:}"
            done < <(grep -nvE '^\s*//' "$file" | grep -E '(^|[^a-z_])smoltcp::' || true)
        fi
    done
done

if [ "$status" = 0 ]; then
    echo "check-layers: firmware imports point down (main.rs -> app -> net -> ethernet -> board)"
fi
exit "$status"
