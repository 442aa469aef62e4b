#!/bin/sh
# run.sh: runs each libFuzzer target for SECONDS seconds, from its seed corpus
# (tests/fuzz/corpus/NAME; tests/email/corpus for fuzz_mime) and what earlier runs found (fuzzers/work/NAME in the build
# tree). Exits 1 when a target finds a crash, a leak or a hang, printing the sanitizer's
# report and the input that caused it (kept in fuzzers/artifacts/NAME/).
#   usage: run.sh SRCDIR SECONDS TARGET...
set -u
srcdir=$1
seconds=$2
shift 2
status=0
for target in "$@"; do
	name=$(basename "$target")
	work=fuzzers/work/$name
	art=fuzzers/artifacts/$name
	log=fuzzers/$name.log
	mkdir -p "$work" "$art"
	rm -f "$art"/*
	seeds=$srcdir/tests/fuzz/corpus/$name
	max_len=4096
	case $name in
	# The email tests' messages are the MIME parser's seeds.
	fuzz_mime) seeds=$srcdir/tests/email/corpus; max_len=65536 ;;
	esac
	echo "fuzz: $name for ${seconds} s"
	if "$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
	    -max_len="$max_len" -print_final_stats=1 -artifact_prefix="$art/" \
	    "$work" "$seeds" >"$log" 2>&1; then
		echo "fuzz: $name: $(grep -E '^Done [0-9]+ runs' "$log" | tail -n 1); nothing found"
		continue
	fi
	status=1
	echo "fuzz: $name FOUND A CRASH (full log: $log)"
	if grep -q -E '^==[0-9]+==ERROR|^SUMMARY:' "$log"; then
		# UBSan writes "runtime error:" and a SUMMARY; ASan a report from ==ERROR to its SUMMARY.
		grep -E 'runtime error:' "$log" | head -n 5
		sed -n '/^==[0-9]*==ERROR/,/^SUMMARY/p' "$log" | head -n 40
		grep -q -E '^==[0-9]+==ERROR' "$log" || grep -E '^SUMMARY:' "$log" | head -n 1
	else
		tail -n 15 "$log"
	fi
	for f in "$art"/*; do
		[ -f "$f" ] || continue
		echo "fuzz: the input, kept as $f:"
		od -A d -c "$f" | head -n 16
	done
done
exit $status
