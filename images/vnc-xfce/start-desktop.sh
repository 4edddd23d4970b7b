#!/bin/sh
# The report's container command, `bash -c 'vncserver; tail -f /dev/null'`, with a readiness
# file once the desktop is up and settled: the session manager, the window manager, the panel,
# the desktop (wallpaper and icons), the terminal from xstartup and IBus all running, and no
# image loader left. sid's gdk-pixbuf loads images through glycin, whose loaders run for about
# 30 s in bwrap sandboxes with PID namespaces of their own, which CRIU cannot dump
# (checkpoint-restore/criu#2426): a checkpoint then would race them; a person connecting a
# minute later finds them gone.
vncserver :1 -geometry 1024x768 -depth 24
until pgrep -x xfce4-session && pgrep -x xfwm4 && pgrep -x xfce4-panel \
      && pgrep -x xfdesktop && pgrep -x xfce4-terminal && pgrep -x ibus-daemon \
      && ! pgrep -f /usr/libexec/glycin-loaders/; do
  sleep 0.5
done >/dev/null
# The report's `tail -f /dev/null`, as a witness: it counts in memory under a random identity
# (`ID COUNT` in /tmp/counter) and then writes the readiness file.
exec /usr/local/bin/witness.sh /tmp/counter /tmp/desktop-ready
