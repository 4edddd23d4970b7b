#!/bin/bash
# Takes an exclusive flock on /tmp/lock through fd 4 (flock(1) locks the open file description
# it inherits, and the lock stays with it after flock exits), then counts as the control does:
# `ID COUNT` in /tmp/counter, a random identity drawn once and kept in memory. Another process
# asking for the lock (`flock -n /tmp/lock true`) is refused while this shell holds fd 4: a
# restore that brought the lock back keeps refusing it.
read -r id < /proc/sys/kernel/random/uuid
exec 4>/tmp/lock
flock -n 4 || { echo "could not lock /tmp/lock" >&2; exit 1; }
mkfifo /tmp/tick
exec 3<>/tmp/tick
n=0
while :; do
  n=$((n + 1))
  printf '%s %s\n' "$id" "$n" > /tmp/counter
  read -r -t 0.1 -u 3 _ || true
done
