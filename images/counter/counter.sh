#!/bin/sh
# Counts in a shell variable (process memory), not in the file: a workload restarted from scratch
# instead of restored would start again at 1, which the harness sees as the counter going back.
n=0
while :; do
  n=$((n + 1))
  echo "$n" > /tmp/counter.new
  mv /tmp/counter.new /tmp/counter
  sleep 0.1
done
