#!/usr/bin/python3
"""A GUI-side D-Bus client, as a desktop application in a container is one.

It holds one connection to the system bus (/run/dbus/system_bus_socket, the GLib default) through
GIO, the library GTK applications use, and on it:
- owns the well-known name org.criumatrix.DbusGui and answers its `Ping` method with its counter
  (the harness calls it after a restore: the application is still reachable on the bus);
- subscribes to the bus's NameOwnerChanged signal, as applications watching services do;
- every 100 ms asks the bus who owns its name and counts the answers. The count lives in this
  process's memory and is written to /tmp/counter as `ID COUNT`, after a random identity drawn
  once at start: it grows only while the connection works and the name is still ours, and a
  restart from scratch would show another identity and start again at 1.

Errors end the process (GLib also exits it when the bus closes the connection), so a broken
connection shows as a counter that stops and a container that exits.
"""

import os
import sys
import time


from gi.repository import Gio, GLib

NAME = "org.criumatrix.DbusGui"
OBJECT = "/org/criumatrix/DbusGui"
COUNTER = "/tmp/counter"
INTERFACE = Gio.DBusNodeInfo.new_for_xml(
    """<node><interface name="org.criumatrix.DbusGui">
         <method name="Ping"><arg name="count" type="t" direction="out"/></method>
       </interface></node>"""
).interfaces[0]

IDENTITY = os.urandom(16).hex()
count = 0
signals = 0


def fail(message):
    print(f"gui-app: {message}", file=sys.stderr, flush=True)
    # Not sys.exit: PyGObject would only print an exception raised in a callback.
    os._exit(1)


def connect(limit=30.0):
    """The bus may still be starting (with-own-bus.sh starts it beside this process)."""
    started = time.monotonic()
    while True:
        try:
            return Gio.bus_get_sync(Gio.BusType.SYSTEM, None)
        except GLib.Error as error:
            if time.monotonic() - started > limit:
                fail(f"no system bus after {limit:.0f}s: {error.message}")
            time.sleep(0.1)


def write_counter():
    # Written aside and renamed, so a reader never sees a half-written number.
    with open(COUNTER + ".new", "w") as f:
        f.write(f"{IDENTITY} {count}\n")
    os.replace(COUNTER + ".new", COUNTER)


def on_method(connection, sender, path, interface, method, parameters, invocation):
    invocation.return_value(GLib.Variant("(t)", (count,)))


def on_signal(connection, sender, path, interface, signal, parameters):
    global signals
    signals += 1


def tick():
    bus.call(
        "org.freedesktop.DBus",
        "/org/freedesktop/DBus",
        "org.freedesktop.DBus",
        "GetNameOwner",
        GLib.Variant("(s)", (NAME,)),
        GLib.VariantType.new("(s)"),
        Gio.DBusCallFlags.NONE,
        5000,
        None,
        on_owner,
    )
    return GLib.SOURCE_REMOVE


def on_owner(connection, result):
    global count
    try:
        (owner,) = connection.call_finish(result).unpack()
    except GLib.Error as error:
        fail(f"the bus did not answer: {error.message}")
    if owner != connection.get_unique_name():
        fail(f"{NAME} is owned by {owner}, not by this connection ({connection.get_unique_name()})")
    count += 1
    write_counter()
    GLib.timeout_add(100, tick)


def on_acquired(connection, name):
    tick()


def on_lost(connection, name):
    fail(f"could not own {name} on the system bus (or lost it)")


bus = connect()
bus.register_object(OBJECT, INTERFACE, on_method, None, None)
bus.signal_subscribe(
    "org.freedesktop.DBus",
    "org.freedesktop.DBus",
    "NameOwnerChanged",
    "/org/freedesktop/DBus",
    None,
    Gio.DBusSignalFlags.NONE,
    on_signal,
)
Gio.bus_own_name_on_connection(bus, NAME, Gio.BusNameOwnerFlags.NONE, on_acquired, on_lost)
GLib.MainLoop().run()
