#!/bin/sh
# Format the C sources with the checked-in .clang-format; --check fails on any difference.
set -eu
cd "$(dirname "$0")/.."
files=$(git ls-files '*.c' '*.h' 2>/dev/null || find src tests bench -name '*.[ch]')
[ -n "$files" ] || exit 0
if [ "${1:-}" = "--check" ]; then
	# shellcheck disable=SC2086
	clang-format --dry-run --Werror $files
else
	# shellcheck disable=SC2086
	clang-format -i $files
fi
