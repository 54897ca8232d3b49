#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
#
# A stand-in for systemd's notification socket, for keys_notify.sh: binds
# a Unix datagram socket at PATH (what NOTIFY_SOCKET names), writes every
# line of every datagram to OUT as "MONOTONIC_SECONDS LINE", and at the
# first READY=1 asks https://127.0.0.1:PORT/v1/health at once (TLS checked
# against CAFILE) and writes "health-at-ready STATUS READY" so the test
# can tell whether dkmd was really ready when it said so (and, if not,
# "health-detail WHY"). Runs until it
# is signalled, or for 120 s at most.
#
# Usage: notify_listen.py PATH OUT PORT CAFILE
import json
import socket
import ssl
import sys
import time
import urllib.error
import urllib.request


def health(port, cafile):
    ctx = ssl.create_default_context(cafile=cafile)
    url = "https://127.0.0.1:%s/v1/health" % port
    try:
        with urllib.request.urlopen(url, context=ctx, timeout=5) as r:
            return r.status, json.load(r).get("ready"), ""
    except urllib.error.HTTPError as e:
        return e.code, False, json.load(e).get("detail", "")
    except (OSError, ValueError) as e:
        return "error", False, str(e)


def main():
    path, out, port, cafile = sys.argv[1:5]
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(0.5)
    asked = False
    end = time.monotonic() + 120
    with open(out, "a", buffering=1) as f:
        f.write("%.3f listening\n" % time.monotonic())
        while time.monotonic() < end:
            try:
                data = sock.recv(4096)
            except socket.timeout:
                continue
            now = time.monotonic()
            for line in data.decode("utf-8", "replace").split("\n"):
                f.write("%.3f %s\n" % (now, line))
                if line == "READY=1" and not asked:
                    asked = True
                    status, ready, why = health(port, cafile)
                    f.write("%.3f health-at-ready %s %s\n" % (now, status, ready))
                    if why:
                        f.write("%.3f health-detail %s\n" % (now, why))


if __name__ == "__main__":
    main()
