#!/bin/sh
# The report's container command, `bash -c 'vncserver; tail -f /dev/null'`, with a readiness
# file once the desktop is up: the session manager, the window manager, the panel, the desktop
# (wallpaper and icons), the terminal from xstartup and IBus all running.
vncserver :1 -geometry 1024x768 -depth 24
until pgrep -x xfce4-session && pgrep -x xfwm4 && pgrep -x xfce4-panel \
      && pgrep -x xfdesktop && pgrep -x xfce4-terminal && pgrep -x ibus-daemon; do
  sleep 0.5
done >/dev/null
echo "desktop :1 up" > /tmp/desktop-ready
exec tail -f /dev/null
