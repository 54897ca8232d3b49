#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
#
# Lets several TCTI connections share one swtpm, as the kernel's
# /dev/tpmrm0 lets several processes share a real TPM: swtpm serves one
# connection at a time, and a node whose TLS key is in its TPM has two
# (dkm's ESAPI context and tpm2-openssl's). Each command is read whole
# from a client (TPM header: tag, size, code), sent on the one connection
# to swtpm, and its whole response sent back; commands of different
# clients never interleave. Unlike a resource manager it virtualizes no
# handles (swtpm's three object slots are shared), which dkm's clients do
# not need: each flushes what it loads.
#
# The swtpm TCTI also opens swtpm's control channel (the port after the
# command port): LISTEN_PORT + 1 passes each connection through to it.
#
# Usage: tpm_mux.py LISTEN_PORT SWTPM_PORT   (prints "ready" when listening;
# runs until killed)
import socket
import struct
import sys
import threading

MAX = 1 << 16


def read_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def read_message(s):
    head = read_exact(s, 10)
    if head is None:
        return None
    size = struct.unpack(">I", head[2:6])[0]
    if size < 10 or size > MAX:
        return None
    rest = read_exact(s, size - 10)
    return None if rest is None else head + rest


def pipe(a, b):
    try:
        while True:
            data = a.recv(4096)
            if not data:
                break
            b.sendall(data)
    except OSError:
        pass
    for s in (a, b):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def control(listen_port, ctrl_port):
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", listen_port))
    server.listen(16)
    while True:
        conn, _ = server.accept()
        up = socket.create_connection(("127.0.0.1", ctrl_port))
        threading.Thread(target=pipe, args=(conn, up), daemon=True).start()
        threading.Thread(target=pipe, args=(up, conn), daemon=True).start()


def main():
    listen_port, tpm_port = int(sys.argv[1]), int(sys.argv[2])
    upstream = socket.create_connection(("127.0.0.1", tpm_port))
    lock = threading.Lock()
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", listen_port))
    server.listen(16)

    def serve(conn):
        with conn:
            while True:
                cmd = read_message(conn)
                if cmd is None:
                    return
                with lock:
                    upstream.sendall(cmd)
                    resp = read_message(upstream)
                if resp is None:
                    return
                conn.sendall(resp)

    threading.Thread(target=control, args=(listen_port + 1, tpm_port + 1),
                     daemon=True).start()
    print("ready", flush=True)
    while True:
        conn, _ = server.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main()
