"""An independent gRPC peer (Python grpcio, Debian's python3-grpcio) for test/secure_peer_test.ts.

Reads one JSON object from stdin:
  {"target": "127.0.0.1:PORT", "server_name": "localhost", "ca": PATH|null, "cert": PATH|null,
   "key": PATH|null, "calls": [{"path": "/pkg.Service/Method", "request_hex": "", "token": STR|null}]}
and prints one JSON line per call: {"code": "OK"|"UNAUTHENTICATED"|..., "details": "..."}.
Requests and responses are raw protobuf bytes, so no generated Python code is needed.
"""
import json
import sys

import grpc


def read(path):
    if not path:
        return None
    with open(path, "rb") as f:
        return f.read()


def main():
    spec = json.load(sys.stdin)
    options = []
    if spec.get("server_name"):
        options.append(("grpc.ssl_target_name_override", spec["server_name"]))
    if spec.get("ca"):
        creds = grpc.ssl_channel_credentials(
            root_certificates=read(spec["ca"]),
            private_key=read(spec.get("key")),
            certificate_chain=read(spec.get("cert")),
        )
        channel = grpc.secure_channel(spec["target"], creds, options=options)
    else:
        channel = grpc.insecure_channel(spec["target"], options=options)
    with channel:
        for call in spec["calls"]:
            method = channel.unary_unary(call["path"])
            metadata = [("authorization", "Bearer " + call["token"])] if call.get("token") else None
            try:
                method(bytes.fromhex(call.get("request_hex", "")), timeout=10, metadata=metadata)
                result = {"code": "OK", "details": ""}
            except grpc.RpcError as e:
                result = {"code": e.code().name, "details": (e.details() or "")[:300]}
            print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
