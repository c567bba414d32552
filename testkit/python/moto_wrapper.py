"""Runs moto's server for logrelay's tests and dies with the test process.

Started by `logrelay_testkit::Moto` with the repo's .venv python. Listens on 127.0.0.1 at the port
given as the first argument (0 = any free port), prints `PORT <n>` on stdout once listening, then
exits as soon as the parent test process is gone: its stdin (a pipe the parent holds) reaches EOF,
or the parent pid changes. Test binaries never drop their statics, so this is what stops the
shared server.
"""

import logging
import os
import sys
import threading
import time

PARENT_POLL_SECONDS = 0.5


def watch_stdin() -> None:
    """Exit when the parent's end of the stdin pipe closes (the parent exited or dropped us)."""
    while sys.stdin.buffer.read(4096):
        pass
    os._exit(0)


def main() -> None:
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    parent = os.getppid()
    # One log line per request would drown test output; keep warnings and errors.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)

    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    _, bound_port = server.get_host_and_port()
    print(f"PORT {bound_port}", flush=True)

    threading.Thread(target=watch_stdin, daemon=True).start()
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_SECONDS)
    os._exit(0)


if __name__ == "__main__":
    main()
