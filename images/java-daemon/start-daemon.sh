#!/bin/sh
# The shell script that starts the daemon. It stays the container's PID 1 and the JVM its child
# (no `exec`), as in the reports: CRIU then dumps shell -> JVM -> the JVM's children.
#
# A small heap and the serial collector keep the dump small; they change nothing about the
# process tree.
java -Xms16m -Xmx64m -XX:+UseSerialGC -cp /opt/daemon/classes Daemon /tmp/ticks
status=$?
echo "the daemon exited with status $status" >&2
exit "$status"
