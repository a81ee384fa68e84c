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

from autobahntestsuite.wstest import run  # noqa: E402  (after the patch)

if __name__ == "__main__":
    sys.argv[0] = re.sub(r"(-script\.pyw|\.exe)?$", "", sys.argv[0])
    sys.exit(run())
