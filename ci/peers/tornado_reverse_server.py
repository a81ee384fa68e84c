#!/usr/bin/env python3
"""The mbed "WebSockets on mbed" tutorial's tornado reverse-echo server, ported to Python 3.

Same behaviour as the tutorial's Python 2 code: path /ws, any Origin accepted, every
message printed on arrival and sent back reversed (``message[::-1]``, so by code point).
Changes: Python 3 print(), ``--port`` instead of the hard-coded 8000, ``--quiet`` to skip
the per-message prints (a benchmark would otherwise measure the terminal), ``--address``
to choose the listen address (127.0.0.1 by default, not every interface), ``IOLoop.current()``
(``instance()`` is deprecated), and a binary message goes back as a binary frame: under
Python 3 tornado hands binary messages over as ``bytes``, and ``write_message(bytes)`` would
send them in a text frame that no longer holds UTF-8 (a protocol error for any client).

    target/ci-venv/bin/python ci/peers/tornado_reverse_server.py --port 8000
"""
import argparse
import socket

import tornado.httpserver
import tornado.ioloop
import tornado.netutil
import tornado.web
import tornado.websocket

QUIET = False


def say(text):
    if not QUIET:
        print(text, flush=True)


class WSHandler(tornado.websocket.WebSocketHandler):
    def open(self):
        say("new connection")

    def on_message(self, message):
        say("message received: %s" % message)
        # Reverse Message and send it back
        say("sending back message: %s" % message[::-1])
        self.write_message(message[::-1], binary=isinstance(message, bytes))

    def on_close(self):
        say("connection closed")

    def check_origin(self, origin):
        return True


application = tornado.web.Application([
    (r"/ws", WSHandler),
])


def main():
    global QUIET
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8000, help="0: any free port (printed)")
    parser.add_argument("--address", default="127.0.0.1", help="listen address ('' for all)")
    parser.add_argument("--quiet", action="store_true", help="no per-message prints")
    args = parser.parse_args()
    QUIET = args.quiet
    http_server = tornado.httpserver.HTTPServer(application)
    sockets = tornado.netutil.bind_sockets(args.port, address=args.address)
    http_server.add_sockets(sockets)
    try:
        my_ip = socket.gethostbyname(socket.gethostname())
    except OSError:
        my_ip = "127.0.0.1"
    print("*** Websocket Server Started at %s***" % my_ip, flush=True)
    # Where it really listens (the port 0 asked for, resolved), for the caller to read.
    print("listening on %s:%d" % sockets[0].getsockname()[:2], flush=True)
    tornado.ioloop.IOLoop.current().start()


if __name__ == "__main__":
    main()
