"""Become a host, then run a command: ``python -m tests.support.host_exec
--hostname NAME [--hide FOLDER ...] -- COMMAND...``.

Run inside a network namespace (``ip netns exec``) and new UTS and mount
namespaces (``unshare --uts --mount``): it sets the host's name, lays an
empty read-only folder over each ``--hide`` path (the other hosts' folders,
the services' data, the test's own files), so that nothing on disk is
shared but what a real host would have, and replaces itself with the
command.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys


def main(argv: list[str]) -> None:
    if "--" not in argv:
        raise SystemExit("usage: host_exec --hostname NAME [--hide FOLDER ...] -- COMMAND...")
    split = argv.index("--")
    parser = argparse.ArgumentParser(prog="host_exec")
    parser.add_argument("--hostname", required=True)
    parser.add_argument("--hide", action="append", default=[])
    options = parser.parse_args(argv[:split])
    command = argv[split + 1 :]
    socket.sethostname(options.hostname)
    for folder in options.hide:
        if os.path.isdir(folder):
            subprocess.run(
                ["mount", "-t", "tmpfs", "-o", "ro,size=4k,mode=0555", "hidden-from-this-host", folder], check=True
            )
    os.execvp(command[0], command)  # noqa: S606 (an argument list, as every command here)


if __name__ == "__main__":
    main(sys.argv[1:])
