"""Autobahn's wstest with every listening socket bound to 127.0.0.1.

wstest (Python 2) listens on all interfaces by default; the tests here may only use
loopback, so this wraps it and forces the interface. Each listening socket is announced
as `listening on 127.0.0.1:PORT` on stdout (so port 0 can be used). Usage is wstest's own:

    target/autobahn-venv/bin/python ci/peers/wstest_loopback.py -m fuzzingserver -s spec.json
"""
import re
import sys

from twisted.internet import reactor

_listen_tcp = reactor.listenTCP


def _listen_tcp_loopback(port, factory, backlog=50, interface=""):
    listening = _listen_tcp(port, factory, backlog, interface="127.0.0.1")
    # Port 0 asks for any free port: say which, for the caller to read.
    print("listening on 127.0.0.1:%d" % listening.getHost().port)
    sys.stdout.flush()
    return listening


reactor.listenTCP = _listen_tcp_loopback

# `--kill-scale N` (this wrapper's own option, taken out before wstest reads the rest)
# stretches the fuzzing cases' `killAfter` bound (the case gives
# up on a peer that has not finished within 0.5-10 s, and records an unclean close) N
# times. The suite was written for native peers; the firmware runs on an emulated CPU
# that a busy shared host pauses now and then, and a 0.5 s bound then judges the
# host's scheduler, not the protocol (seen: case 6.22.2 killed at 561 ms with every
# frame right). Only this failsafe is stretched: `closeAfter`, which paces cases that
# wait for nothing, and every check of what the peer sent are left as they are.
_kill_scale = 1.0
if "--kill-scale" in sys.argv:
    _at = sys.argv.index("--kill-scale")
    _kill_scale = float(sys.argv[_at + 1])
    del sys.argv[_at:_at + 2]
if _kill_scale != 1:
    from autobahntestsuite import fuzzing

    _kill_after = fuzzing.FuzzingProtocol.killAfter

    def _scaled_kill_after(self, delay):
        return _kill_after(self, delay * _kill_scale)

    fuzzing.FuzzingProtocol.killAfter = _scaled_kill_after

from autobahntestsuite.wstest import run  # noqa: E402  (after the patch)

if __name__ == "__main__":
    sys.argv[0] = re.sub(r"(-script\.pyw|\.exe)?$", "", sys.argv[0])
    sys.exit(run())
