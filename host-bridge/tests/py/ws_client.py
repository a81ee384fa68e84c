#!/usr/bin/env python3
"""RFC 6455 test client on the independent `websockets` package (PyPI).

    ws_client.py URL MESSAGE...

MESSAGE is `t:TEXT` or `b:HEX`. Prints each reply as `reply: t:<json>` or
`reply: b:<hex>`, then closes normally and prints `closed <code>`.
Exit status 3 if `websockets` is missing.
"""
import asyncio
import json
import sys

try:
    import websockets
except ImportError:
    print("SKIP: python package 'websockets' is not installed", file=sys.stderr)
    sys.exit(3)


async def main():
    url, messages = sys.argv[1], sys.argv[2:]
    async with websockets.connect(url, max_size=None, open_timeout=10, close_timeout=5) as ws:
        for m in messages:
            kind, _, body = m.partition(":")
            await ws.send(body if kind == "t" else bytes.fromhex(body))
            r = await asyncio.wait_for(ws.recv(), 10)
            if isinstance(r, str):
                print("reply: t:" + json.dumps(r), flush=True)
            else:
                print("reply: b:" + r.hex(), flush=True)
    print(f"closed {ws.close_code}", flush=True)


asyncio.run(main())
