#!/bin/bash
# The desktop container's witness, which start-desktop.sh becomes once the desktop is up: it
# draws a random identity once, keeps it in memory and writes `ID COUNT` to $1 every 100 ms,
# so that a container started again instead of restored shows another identity. The readiness
# file $2 is written after the first count, so the harness never reads before there is one.
# Builtins only: no process is forked per tick.
counter=$1 ready=$2
read -r id < /proc/sys/kernel/random/uuid
mkfifo /tmp/witness-tick
exec 3<>/tmp/witness-tick
n=0
while :; do
  n=$((n + 1))
  printf '%s %s\n' "$id" "$n" > "$counter"
  if [ "$n" = 1 ] && [ -n "$ready" ]; then printf 'desktop :1 up\n' > "$ready"; fi
  read -r -t 0.1 -u 3 _ || true
done
