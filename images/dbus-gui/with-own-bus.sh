#!/bin/sh
# The documented workaround for criu#2460: the container runs its own system bus, so both ends
# of the application's unix connection are inside the checkpointed process tree.
# This shell stays as PID 1 and reaps; the bus runs in the foreground of a background job.
mkdir -p /run/dbus
dbus-daemon --config-file=/etc/dbus-1/container-bus.conf --nofork --nopidfile &
python3 /usr/local/bin/gui-app.py &
wait
