#!/usr/bin/env python3
"""Minimal reverse-echo WebSocket server (RFC 6455 and hixie-76) for the firmware's
end-to-end tests: replies to every message with message[::-1], like the tutorial's
tornado server. Standard library only.

    reverse_server.py PORT [--drive | --no-reverse | --twice | --binary-as-text]

Listens on 127.0.0.1:PORT and serves until killed. (Wrong handshake answers are
e2e_hostile.rs's job.) With --no-reverse (RFC 6455) it echoes messages unchanged; with --twice it sends
every reply twice; with --binary-as-text binary replies go in text frames (like
the tutorial's tornado server).
With --drive the server talks first, for the
firmware's --echo mode: it sends a few messages (text, 3000 bytes of binary, a
fragmented text with a ping in between; hixie-76: three texts), checks each comes
back unchanged, closes, and prints "drive ok" or "drive FAILED".
"""
import base64, hashlib, socket, struct, sys, threading

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
DRIVE = "--drive" in sys.argv
# Echo unchanged instead of reversed (a server the firmware must catch out).
SAME = "--no-reverse" in sys.argv
# Reply to binary messages in text frames, as the tutorial's tornado server does
# (`write_message(message[::-1])` with bytes defaults to a text frame).
AS_TEXT = "--binary-as-text" in sys.argv
# Send every reply twice (a server the firmware must catch out).
TWICE = "--twice" in sys.argv


def recv_exact(conn, n):
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def hixie_number(key):
    digits = int("".join(c for c in key if c.isdigit()))
    spaces = key.count(" ")
    return digits // spaces


def serve_rfc(conn, buf):
    message, kind = b"", None
    while True:
        while len(buf) < 2:
            buf += conn.recv(4096) or b""
            if len(buf) < 2:
                return
        b0, b1 = buf[0], buf[1]
        need = 2
        length = b1 & 0x7F
        if length == 126:
            need = 4
        elif length == 127:
            need = 10
        need_mask = 4 if b1 & 0x80 else 0
        while len(buf) < need + need_mask:
            buf += recv_exact(conn, need + need_mask - len(buf))
        if length == 126:
            length = struct.unpack(">H", buf[2:4])[0]
        elif length == 127:
            length = struct.unpack(">Q", buf[2:10])[0]
        mask = buf[need:need + need_mask]
        buf = buf[need + need_mask:]
        if len(buf) < length:
            buf += recv_exact(conn, length - len(buf))
        payload, buf = bytearray(buf[:length]), buf[length:]
        if mask:
            for i in range(len(payload)):
                payload[i] ^= mask[i % 4]
        opcode, fin = b0 & 0x0F, b0 & 0x80
        if opcode == 8:
            conn.sendall(bytes([0x88, len(payload)]) + bytes(payload))
            return
        if opcode == 9:
            conn.sendall(bytes([0x8A, len(payload)]) + bytes(payload))
            continue
        if opcode in (1, 2):
            kind, message = opcode, b""
        message += bytes(payload)
        if not fin:
            continue
        if SAME:
            reply = message
        elif kind == 1:
            reply = message.decode("utf-8")[::-1].encode("utf-8")
        else:
            reply = message[::-1]
        n = len(reply)
        opcode = 1 if AS_TEXT else kind
        if n < 126:
            header = bytes([0x80 | opcode, n])
        elif n < 65536:
            header = bytes([0x80 | opcode, 126]) + struct.pack(">H", n)
        else:
            header = bytes([0x80 | opcode, 127]) + struct.pack(">Q", n)
        print("message received: %d bytes, sending back reversed" % len(message), flush=True)
        conn.sendall((header + reply) * (2 if TWICE else 1))


def read_frame(conn, buf):
    """One frame from a client (masked): (fin, opcode, payload, rest of buf)."""
    while len(buf) < 2:
        buf += recv_exact(conn, 2 - len(buf))
    b0, b1 = buf[0], buf[1]
    length, need = b1 & 0x7F, 2
    if length == 126:
        need = 4
    elif length == 127:
        need = 10
    need += 4 if b1 & 0x80 else 0
    if len(buf) < need:
        buf += recv_exact(conn, need - len(buf))
    if length == 126:
        length = struct.unpack(">H", buf[2:4])[0]
    elif length == 127:
        length = struct.unpack(">Q", buf[2:10])[0]
    mask = buf[need - 4:need] if b1 & 0x80 else b""
    buf = buf[need:]
    if len(buf) < length:
        buf += recv_exact(conn, length - len(buf))
    payload, buf = bytearray(buf[:length]), buf[length:]
    for i in range(len(payload)) if mask else ():
        payload[i] ^= mask[i % 4]
    return b0 & 0x80, b0 & 0x0F, bytes(payload), buf


def frame(opcode, payload, fin=True):
    n = len(payload)
    b0 = (0x80 if fin else 0) | opcode
    if n < 126:
        return bytes([b0, n]) + payload
    if n < 65536:
        return bytes([b0, 126]) + struct.pack(">H", n) + payload
    return bytes([b0, 127]) + struct.pack(">Q", n) + payload


def serve_drive(conn, buf):
    big = bytes((i * 73) & 0xFF for i in range(3000))
    cases = [
        (1, [frame(1, "hello \u00e9\U0001f642".encode())], "hello \u00e9\U0001f642".encode()),
        (2, [frame(2, big)], big),
        (1, [frame(1, b"frag", fin=False), frame(9, b"ping!"), frame(0, b"mented", fin=True)], b"fragmented"),
    ]
    ok = True
    for kind, frames, expected in cases:
        for f in frames:
            conn.sendall(f)
        got, got_kind = b"", None
        while True:
            fin, opcode, payload, buf = read_frame(conn, buf)
            if opcode == 10:
                print("pong %r" % payload, flush=True)
                continue
            if opcode in (1, 2):
                got_kind = opcode
            got += payload
            if fin:
                break
        match = got_kind == kind and got == expected
        print("echo of %d bytes: %s" % (len(expected), "ok" if match else "WRONG"), flush=True)
        ok = ok and match
    conn.sendall(frame(8, struct.pack(">H", 1000)))
    fin, opcode, payload, buf = read_frame(conn, buf)
    ok = ok and opcode == 8
    print("drive ok" if ok else "drive FAILED", flush=True)


def serve_hixie_drive(conn, buf):
    cases = ["hello \u00e9\U0001f642", "".join(chr(0x61 + i % 26) for i in range(3000)), ""]
    ok = True
    for text in cases:
        conn.sendall(b"\x00" + text.encode() + b"\xff")
        while b"\xff" not in buf:
            buf += recv_exact(conn, 1)
        end = buf.index(b"\xff")
        got, buf = buf[1:end], buf[end + 1:]
        match = got == text.encode()
        print("echo of %d bytes: %s" % (len(text.encode()), "ok" if match else "WRONG"), flush=True)
        ok = ok and match
    conn.sendall(b"\xff\x00")
    try:
        answer = buf[:2] if len(buf) >= 2 else buf + recv_exact(conn, 2 - len(buf))
    except EOFError:
        answer = b"(eof)"
    print("close answer %r" % answer, flush=True)
    print("drive ok" if ok else "drive FAILED", flush=True)


def serve_hixie(conn, buf):
    while True:
        while not buf:
            buf = conn.recv(4096)
            if not buf:
                return
        if buf[0] == 0xFF:
            conn.sendall(b"\xff\x00")
            return
        while b"\xff" not in buf:
            more = conn.recv(4096)
            if not more:
                return
            buf += more
        end = buf.index(b"\xff")
        text = buf[1:end].decode("utf-8")
        buf = buf[end + 1:]
        print("message received: %d chars, sending back reversed" % len(text), flush=True)
        conn.sendall(b"\x00" + text[::-1].encode("utf-8") + b"\xff")


def handle(conn):
    try:
        buf = b""
        while b"\r\n\r\n" not in buf:
            more = conn.recv(4096)
            if not more:
                return
            buf += more
        head, buf = buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        path = lines[0].split(" ")[1]
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        print("handshake: %s origin=%s" % (path, headers.get("origin")), flush=True)
        if "sec-websocket-key" in headers:
            accept = base64.b64encode(hashlib.sha1(headers["sec-websocket-key"].encode() + GUID).digest())
            conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                         b"Connection: Upgrade\r\nServer: reverse_server.py\r\n"
                         b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n")
            (serve_drive if DRIVE else serve_rfc)(conn, buf)
        else:
            if len(buf) < 8:
                buf += recv_exact(conn, 8 - len(buf))
            key3, buf = buf[:8], buf[8:]
            n1 = hixie_number(headers["sec-websocket-key1"])
            n2 = hixie_number(headers["sec-websocket-key2"])
            answer = hashlib.md5(struct.pack(">II", n1, n2) + key3).digest()
            location = "ws://%s%s" % (headers["host"], path)
            conn.sendall(("HTTP/1.1 101 WebSocket Protocol Handshake\r\nUpgrade: WebSocket\r\n"
                          "Connection: Upgrade\r\nSec-WebSocket-Origin: %s\r\n"
                          "Sec-WebSocket-Location: %s\r\n\r\n" % (headers.get("origin", "null"), location)
                          ).encode() + answer)
            (serve_hixie_drive if DRIVE else serve_hixie)(conn, buf)
    except (EOFError, ConnectionError, UnicodeDecodeError) as e:
        print("connection ended: %r" % e, flush=True)
    finally:
        conn.close()
        print("connection closed", flush=True)


def main():
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", int(sys.argv[1])))
    srv.listen(8)
    print("listening on %s:%d" % srv.getsockname(), flush=True)
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=handle, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main()
