#!/bin/sh
# Writes `hvo simulate --json` of a broad set of configurations into DIR, one
# file per configuration, so that two binaries can be compared with
# `diff`, the `"seconds_` lines aside (semantics unchanged by a speed change).
# Usage: scripts/simulate-configs.sh HVO_BINARY DIR [OPTION...]
# (the options are added to every run, e.g. --checker-thread).
set -eu
bin=$1
out=$2
shift 2
mkdir -p "$out"
extra_all="$*"
n=0
run() {
    n=$((n + 1))
    name=$(printf '%02d' "$n")
    echo "$*" >"$out/$name.args"
    "$bin" simulate --json "$@" $extra_all >"$out/$name.json" 2>"$out/$name.err" || echo "exit $?" >>"$out/$name.err"
}
for p in linux-generic bbm stop-machine pause-cpus ro-first shared-tail af-cas; do
    extra=
    [ "$p" = af-cas ] && extra=--hw-af
    run --protocol "$p" --hugepages 64 --restore 16 $extra
done
for s in direct bbm nt bbml2-noabort af-cas; do
    for b in 0 1 2 2-noabort; do
        run --split "$s" --bbm "$b" --hugepages 48 --hw-af --restore 8
    done
done
run --granule 4k --hugepagesz 64K --hugepages 512 --restore 32
run --granule 4k --hugepagesz 32M --hugepages 8 --restore 2
run --granule 4k --hugepagesz 1G --hugepages 2 --restore 1
run --granule 16k --hugepagesz 2M --hugepages 64 --restore 8
run --granule 16k --hugepagesz 32M --hugepages 16 --protocol ro-first --bbm 2
run --granule 16k --hugepagesz 1G --hugepages 2 --restore 1
run --granule 64k --hugepagesz 2M --hugepages 64 --restore 8
run --granule 64k --hugepagesz 512M --hugepages 4 --protocol bbm --restore 2
run --granule 64k --hugepagesz 16G --hugepages 1 --restore 1
run --hugepages 1024 --restore 1024 --batch 100
run --hugepages 64 -v --protocol ro-first --bbm 0
run --hugepages 64 -v --restore 64 --hw-dbm
run --hugepages 64 --memory 4G --protocol shared-tail --bbm 2 --restore 32
run --hugepages 4096 --protocol pause-cpus --cpus 2 --restore 100
run --hugepages 16 --memory 64M
run --hugepages 32768 --restore 32768
run --hugepages 16384 --protocol ro-first --bbm 2 --restore 16384
run --hugepages 16384 --protocol shared-tail --bbm 2 --restore 4096 --batch 1000
run --hugepages 16384 --protocol af-cas --hw-af --restore 16384
echo "$n configurations in $out"
