"""An independent hixie-76 reverse-echo server: eventlet's websocket module, which
still speaks draft 76, with the tutorial's behaviour (send every message back
reversed). Used by the end-to-end interop tests; not our code on the server side.

    python eventlet_hixie_server.py --host 127.0.0.1 --port 8076
"""
import argparse
import sys
import warnings

warnings.filterwarnings("ignore")  # eventlet announces its own deprecation on import

import eventlet  # noqa: E402
import eventlet.websocket  # noqa: E402
import eventlet.wsgi  # noqa: E402


@eventlet.websocket.WebSocketWSGI
def reverse_echo(ws):
    print("new connection", flush=True)
    while True:
        message = ws.wait()
        if message is None:
            break
        print("message received: %s" % message, flush=True)
        print("sending back message: %s" % message[::-1], flush=True)
        ws.send(message[::-1])
    print("connection closed", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8076, help="0: any free port (printed)")
    args = parser.parse_args()
    listener = eventlet.listen((args.host, args.port))
    print("*** eventlet hixie-76 server at %s:%d ***" % listener.getsockname(), flush=True)
    print("listening on %s:%d" % listener.getsockname(), flush=True)
    eventlet.wsgi.server(listener, reverse_echo, log=sys.stderr, log_output=False)


if __name__ == "__main__":
    main()
