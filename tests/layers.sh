#!/bin/sh
# layers.sh: core files call down only. Fails, naming file:line, when a file
# under core/ includes a header of a higher layer (lib < store < register <
# rules < http < daemon). tests/layers.allow lists the known exceptions
# still to be removed ("file header" per line); an entry that no longer
# matches is reported, so the list only shrinks.
top=${LOKET_SRCDIR:-${srcdir:-.}}
cd "$top" || exit 99
[ -d core ] || { echo "layers.sh: run from the source tree (srcdir)" >&2; exit 99; }

rank() {
	case $1 in
	lib) echo 0 ;; store) echo 1 ;; register) echo 2 ;; rules) echo 3 ;;
	http) echo 4 ;; daemon) echo 5 ;; *) echo -1 ;;
	esac
}

allow=tests/layers.allow
failed=0
used=$(mktemp) || exit 99
trap 'rm -f "$used"' EXIT
for f in core/*/*.c core/*/*.h; do
	layer=$(basename "$(dirname "$f")")
	mine=$(rank "$layer")
	grep -n '^[[:space:]]*#[[:space:]]*include[[:space:]]*"[^"]*"' "$f" |
	while IFS= read -r hit; do
		line=${hit%%:*}
		header=$(printf '%s\n' "$hit" | sed 's/.*"\([^"]*\)".*/\1/')
		for h in core/*/"$header"; do
			[ -f "$h" ] || continue
			theirs=$(rank "$(basename "$(dirname "$h")")")
			[ "$theirs" -gt "$mine" ] || continue
			if [ -f "$allow" ] && grep -qx "$f $header" "$allow"; then
				echo "$f $header" >>"$used"
				continue
			fi
			echo "$f:$line: includes $h: core/$layer may not call up into core/$(basename "$(dirname "$h")")"
			echo x
		done
	done
done >"$used.out"
grep -v '^x$' "$used.out"
grep -qx x "$used.out" && failed=1
rm -f "$used.out"
if [ -f "$allow" ]; then
	grep -v '^#' "$allow" | grep -v '^$' | while IFS= read -r entry; do
		grep -qx "$entry" "$used" ||
			echo "layers.sh: note: '$entry' in $allow no longer calls up; remove it"
	done
fi
exit $failed
