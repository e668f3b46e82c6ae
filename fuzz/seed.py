#!/usr/bin/env python3
"""Writes the committed seed corpus: every test vector of docs/PROTOCOL.md
(requests and rejects seed the server's decoder, replies seed the probe's
parser) and a few HTTP requests. Rerun after adding vectors."""
import hashlib, pathlib, re

root = pathlib.Path(__file__).resolve().parent
doc = (root.parent / "docs" / "PROTOCOL.md").read_text()

def write(target, data):
    d = root / "corpus" / target
    d.mkdir(parents=True, exist_ok=True)
    (d / hashlib.sha1(data).hexdigest()).write_bytes(data)

for block in re.findall(r"```vector\n(.*?)```", doc, re.S):
    hexpart = block.split("hex:", 1)[1]
    data = bytes.fromhex("".join(hexpart.split()))
    kind = data[5] if len(data) > 5 else 0
    reply = kind in (0x81, 0x82) or "receiver: client" in block
    write("probe_reply" if reply else "frame_decoder", data)
    # Pipelined: the same frame twice, as a client reusing its connection.
    write("probe_reply" if reply else "frame_decoder", data + data)

for req in [
    b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    b"GET /readyz HTTP/1.0\r\n\r\n",
    b"HEAD /livez HTTP/1.1\r\nHost: x\r\nUser-Agent: kube-probe/1.30\r\n\r\n",
    b"GET /healthz?expect=ok,degraded&component=db HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /healthz?component=%64%62 HTTP/1.1\r\n\r\n",
    b"POST /healthz HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
    b"GET /metrics HTTP/1.1\r\n\r\n",
]:
    write("http_request", req)
