#!/usr/bin/env python3
"""A hand-written draft-hixie-76 WebSocket client (no library), for the tests.

    hixie76_client.py HOST PORT PATH MESSAGE...

Does the opening handshake with random keys (draft section 4.1), checks the
server's 16-byte MD5 challenge answer and headers, sends each MESSAGE as a
0x00 ... 0xFF text frame, prints each reply as `reply: <json string>`, then
sends the closing frame 0xFF 0x00 and expects it back. Exit status 0 on success.
"""
import hashlib
import json
import random
import socket
import struct
import sys


def make_key(rng):
    spaces = rng.randint(1, 12)
    maximum = min(4294967295 // spaces, 4294967295)
    number = rng.randint(0, maximum)
    key = list(str(number * spaces))
    for _ in range(rng.randint(1, 12)):
        c = rng.choice([chr(x) for x in list(range(0x21, 0x30)) + list(range(0x3A, 0x7F))])
        key.insert(rng.randint(0, len(key)), c)
    for _ in range(spaces):
        key.insert(rng.randint(1, len(key) - 1), " ")
    return "".join(key), number


def recv_until(sock, buf, marker):
    while marker not in buf:
        chunk = sock.recv(4096)
        if not chunk:
            raise SystemExit(f"connection closed before {marker!r}; got {bytes(buf)!r}")
        buf += chunk
    i = buf.index(marker) + len(marker)
    return bytes(buf[:i]), bytearray(buf[i:])


def recv_exact(sock, buf, n):
    while len(buf) < n:
        chunk = sock.recv(4096)
        if not chunk:
            raise SystemExit("connection closed early")
        buf += chunk
    return bytes(buf[:n]), bytearray(buf[n:])


def main():
    host, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    messages = sys.argv[4:]
    rng = random.Random(76)
    key1, n1 = make_key(rng)
    key2, n2 = make_key(rng)
    key3 = bytes(rng.getrandbits(8) for _ in range(8))
    expected = hashlib.md5(struct.pack(">II", n1, n2) + key3).digest()
    origin = "http://example.com"
    request = (
        f"GET {path} HTTP/1.1\r\n"
        "Upgrade: WebSocket\r\n"
        "Connection: Upgrade\r\n"
        f"Host: {host}:{port}\r\n"
        f"Origin: {origin}\r\n"
        f"Sec-WebSocket-Key1: {key1}\r\n"
        f"Sec-WebSocket-Key2: {key2}\r\n"
        "\r\n"
    ).encode() + key3
    sock = socket.create_connection((host, port), timeout=10)
    sock.sendall(request)
    buf = bytearray()
    head, buf = recv_until(sock, buf, b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    if not lines[0].startswith("HTTP/1.1 101"):
        raise SystemExit(f"bad status line: {lines[0]!r}")
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    if headers.get("upgrade", "").lower() != "websocket":
        raise SystemExit(f"bad Upgrade: {headers}")
    if headers.get("sec-websocket-origin") != origin:
        raise SystemExit(f"bad Sec-WebSocket-Origin: {headers}")
    if headers.get("sec-websocket-location") != f"ws://{host}:{port}{path}":
        raise SystemExit(f"bad Sec-WebSocket-Location: {headers}")
    answer, buf = recv_exact(sock, buf, 16)
    if answer != expected:
        raise SystemExit(f"bad challenge answer {answer.hex()} != {expected.hex()}")
    print("handshake ok", flush=True)
    for m in messages:
        sock.sendall(b"\x00" + m.encode("utf-8") + b"\xff")
        first, buf = recv_exact(sock, buf, 1)
        if first != b"\x00":
            raise SystemExit(f"expected a text frame, got {first!r}")
        frame, buf = recv_until(sock, buf, b"\xff")
        print("reply: " + json.dumps(frame[:-1].decode("utf-8")), flush=True)
    sock.sendall(b"\xff\x00")
    closing, buf = recv_exact(sock, buf, 2)
    if closing != b"\xff\x00":
        raise SystemExit(f"expected the closing frame, got {closing!r}")
    print("closed ok", flush=True)


if __name__ == "__main__":
    main()
