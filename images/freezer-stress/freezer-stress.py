#!/usr/bin/python3
"""A workload that makes freezing hard, with a counter the harness verifies.

The main process counts in memory and writes `ID COUNT` to /tmp/counter every 100 ms, after a
random identity drawn once at start (a restart from scratch shows another identity and the
counter going back), through a rename so that it is never torn. Beside it:
  - STRESS_THREADS threads in the main process that wake every few milliseconds;
  - STRESS_WORKERS child processes, each with
      STRESS_FORKERS threads that fork() and _exit() in a loop (process churn: the cgroup v1
        freezer has to catch tasks that are being created and exiting while it freezes),
      STRESS_SPAWNERS threads that posix_spawn() /bin/true in a loop (glibc spawns with
        CLONE_VFORK: the parent sleeps uninterruptibly, state D, until the child has exec'd),
      STRESS_SYNCERS threads that write 256 KiB and fsync() in a loop (state D in the block
        layer while the data reaches the disk).
Knobs are environment variables, so a scenario can turn the load up or down without a rebuild.
"""
import os
import threading
import time



def knob(name, default):
    return int(os.environ.get(name, default))


THREADS = knob("STRESS_THREADS", 32)
WORKERS = knob("STRESS_WORKERS", 2)
FORKERS = knob("STRESS_FORKERS", 1)
SPAWNERS = knob("STRESS_SPAWNERS", 2)
SYNCERS = knob("STRESS_SYNCERS", 1)
BLOCK = b"x" * (256 * 1024)


def forker():
    while True:
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)


def spawner():
    while True:
        pid = os.posix_spawn("/bin/true", ["true"], {})
        os.waitpid(pid, 0)


def syncer(path):
    while True:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, BLOCK)
            os.fsync(fd)
        finally:
            os.close(fd)


def ticker():
    while True:
        time.sleep(0.005)


def start(target, *args):
    threading.Thread(target=target, args=args, daemon=True).start()


def worker(index):
    for _ in range(FORKERS):
        start(forker)
    for _ in range(SPAWNERS):
        start(spawner)
    for n in range(SYNCERS):
        start(syncer, f"/var/tmp/sync-{index}-{n}")
    while True:
        time.sleep(3600)


def main():
    # Workers are forked before any thread starts: a fork from a single-threaded process.
    for index in range(WORKERS):
        if os.fork() == 0:
            worker(index)
    for _ in range(THREADS):
        start(ticker)
    identity = os.urandom(16).hex()
    count = 0
    while True:
        count += 1
        # Written aside and renamed: a checkpoint taken mid-write never restores an empty
        # counter (under software emulation the restored workload may not write again for
        # longer than the harness waits).
        with open("/tmp/counter.new", "w") as f:
            f.write(f"{identity} {count}\n")
        os.replace("/tmp/counter.new", "/tmp/counter")
        time.sleep(0.1)


if __name__ == "__main__":
    main()
