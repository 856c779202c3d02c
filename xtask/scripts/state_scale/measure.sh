#!/bin/bash
# Whole-process times of `livchat server list` and `livchat settings set` on homes of 10 and
# 1,000 servers (10 deployments each): median and p90 of 30 runs each (README, "State at
# scale"). Build first: cargo build --release -p livchat-cli
set -e
here=$(cd "$(dirname "$0")" && pwd)
BIN=${BIN:-$here/../../../target/release/livchat}
for n in 10 1000; do
  H=$(mktemp -d)/home
  LIVCHAT_HOME=$H $BIN init >/dev/null 2>&1
  python3 "$here/gen.py" "$H" $n
  LIVCHAT_HOME=$H $BIN server list >/dev/null
  for what in list settings; do
    ts=()
    for i in $(seq 30); do
      s=$(date +%s%N)
      if [ $what = list ]; then LIVCHAT_HOME=$H $BIN server list >/dev/null
      else LIVCHAT_HOME=$H $BIN settings set company_name "c$i" >/dev/null; fi
      e=$(date +%s%N); ts+=($(( (e-s)/1000 )))
    done
    sorted=($(printf '%s\n' "${ts[@]}" | sort -n))
    echo "servers=$n $what: median ${sorted[15]} us, p90 ${sorted[27]} us, state.json $(stat -c %s "$H/state.json") bytes"
  done
  rm -rf "$(dirname "$H")"
done
