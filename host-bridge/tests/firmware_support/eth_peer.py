#!/usr/bin/env python3
"""A one-host Ethernet segment for the firmware's ICMP test, over QEMU's
`-nic socket,connect=127.0.0.1:PORT` (each frame prefixed by its 4-byte big-endian
length). Standard library only.

    eth_peer.py PORT PEER_IP FIRMWARE_IP [--oversize]

Plays a host at PEER_IP (MAC 02:00:00:00:00:01): answers ARP and ICMP echo
requests, and as soon as the firmware shows up (its first ARP request), pings
FIRMWARE_IP itself, printing "echo reply from FIRMWARE_IP seq N" for each answer.
With --oversize it first sends the board a 2100-byte frame, more than the
Stellaris receive FIFO holds: QEMU reports it as a FIFO overrun (FOV), which the
driver must count and recover from.
"""
import socket, struct, sys

PORT, PEER_IP, FW_IP = int(sys.argv[1]), socket.inet_aton(sys.argv[2]), socket.inet_aton(sys.argv[3])
PEER_MAC = bytes.fromhex("020000000001")
OVERSIZE = "--oversize" in sys.argv


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def ipv4(src, dst, proto, payload):
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 0, 0, 64, proto, 0, src, dst)
    hdr = hdr[:10] + struct.pack("!H", checksum(hdr)) + hdr[12:]
    return hdr + payload


def icmp_echo(kind, ident, seq, data):
    msg = struct.pack("!BBHHH", kind, 0, 0, ident, seq) + data
    return msg[:2] + struct.pack("!H", checksum(msg)) + msg[4:]


def main():
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", PORT))
    srv.listen(1)
    print("listening on %s:%d" % srv.getsockname(), flush=True)
    while True:
        conn, _ = srv.accept()
        # The test's readiness probe connects and leaves at once: wait for QEMU.
        first = conn.recv(4, socket.MSG_PEEK)
        if first:
            break
        conn.close()
    print("qemu connected", flush=True)
    fw_mac = None
    pinged = False
    buf = b""

    def send(frame):
        conn.sendall(struct.pack("!I", len(frame)) + frame)

    def ping_firmware():
        for seq in range(3):
            ip = ipv4(PEER_IP, FW_IP, 1, icmp_echo(8, 0x1234, seq, b"from the peer"))
            send(fw_mac + PEER_MAC + b"\x08\x00" + ip)

    while True:
        more = conn.recv(65536)
        if not more:
            print("qemu disconnected", flush=True)
            return
        buf += more
        while len(buf) >= 4 and len(buf) >= 4 + struct.unpack("!I", buf[:4])[0]:
            n = struct.unpack("!I", buf[:4])[0]
            frame, buf = buf[4:4 + n], buf[4 + n:]
            dst, src, ethertype = frame[:6], frame[6:12], frame[12:14]
            if ethertype == b"\x08\x06":
                op = struct.unpack("!H", frame[20:22])[0]
                sha, spa, tpa = frame[22:28], frame[28:32], frame[38:42]
                if op == 1 and tpa == PEER_IP:
                    fw_mac = sha
                    arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 2) + PEER_MAC + PEER_IP + sha + spa
                    send(sha + PEER_MAC + b"\x08\x06" + arp)
                    print("answered ARP from %s" % socket.inet_ntoa(spa), flush=True)
                    if not pinged:
                        pinged = True
                        if OVERSIZE:
                            send(sha + PEER_MAC + b"\x88\xb5" + bytes(2100 - 14))
                            print("sent a 2100-byte frame", flush=True)
                        ping_firmware()
            elif ethertype == b"\x08\x00":
                ip = frame[14:]
                ihl = (ip[0] & 15) * 4
                proto, src_ip, dst_ip = ip[9], ip[12:16], ip[16:20]
                icmp = ip[ihl:struct.unpack("!H", ip[2:4])[0]]
                if proto != 1:
                    continue
                kind, _, _, ident, seq = struct.unpack("!BBHHH", icmp[:8])
                if kind == 8 and dst_ip == PEER_IP:
                    reply = ipv4(PEER_IP, src_ip, 1, icmp_echo(0, ident, seq, icmp[8:]))
                    send(src + PEER_MAC + b"\x08\x00" + reply)
                    print("answered ping seq %d" % seq, flush=True)
                elif kind == 0 and src_ip == FW_IP and checksum(icmp) == 0:
                    print("echo reply from %s seq %d" % (socket.inet_ntoa(FW_IP), seq), flush=True)


if __name__ == "__main__":
    main()
