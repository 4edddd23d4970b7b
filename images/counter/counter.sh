#!/bin/bash
# The control workload. It counts in a shell variable (process memory), not in the file, and
# writes `ID COUNT`: a random identity it draws once at start and keeps in memory, then its
# count. A workload restarted from scratch instead of restored has another identity and starts
# again at 1; the harness's witness check sees both.
#
# Builtins only, so no process is forked per tick: with `sleep` forked every 100 ms, CRIU sometimes
# seized a child between fork and exec and then hit its 10 s dump timeout under CPU load
# ("Timeout reached. Try to interrupt: 0"). That is a finding for a churn scenario, not a control.
read -r id < /proc/sys/kernel/random/uuid
mkfifo /tmp/tick
exec 3<>/tmp/tick   # opened read-write: reads wait for the timeout, never for a writer
n=0
while :; do
  n=$((n + 1))
  printf '%s %s\n' "$id" "$n" > /tmp/counter
  read -r -t 0.1 -u 3 _ || true
done
