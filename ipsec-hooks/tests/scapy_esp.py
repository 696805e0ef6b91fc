#!/usr/bin/env python3
"""ESP with AES-GCM by scapy's IPsec layer, for tests/scapy.rs: an independent implementation
to seal packets the Rust crate opens, and to open packets the Rust crate sealed.

Reads a JSON list of cases on standard input, writes a JSON list of results (hex strings, or
{"error": ...}) on standard output. A case:
  {"op": "encrypt" | "decrypt", "spi": int, "key": hex (key then 4-byte salt),
   "tunnel": null | [src, dst], "seq": int (low 32 bits), "esn": null | high 32 bits,
   "packet": hex (an IPv4 or IPv6 packet)}
encrypt uses the sequence number as the 8-byte IV (RFC 4106 lets a counter be the IV), as the
crate does, so the two ESP payloads can be compared byte for byte.
"""
import json
import struct
import sys

from scapy.layers.inet import IP
from scapy.layers.inet6 import IPv6
from scapy.layers.ipsec import ESP, SecurityAssociation


def parse_ip(raw):
    return IP(raw) if raw[0] >> 4 == 4 else IPv6(raw)


def run(case):
    tunnel = None
    if case["tunnel"]:
        src, dst = case["tunnel"]
        tunnel = IPv6(src=src, dst=dst) if ":" in dst else IP(src=src, dst=dst)
    esn = case["esn"]
    sa = SecurityAssociation(
        ESP,
        spi=case["spi"],
        crypt_algo="AES-GCM",
        crypt_key=bytes.fromhex(case["key"]),
        auth_algo=None,
        tunnel_header=tunnel,
        esn_en=esn is not None,
        esn=esn or 0,
    )
    pkt = parse_ip(bytes.fromhex(case["packet"]))
    if case["op"] == "encrypt":
        full = ((esn or 0) << 32) | case["seq"]
        out = sa.encrypt(pkt, seq_num=case["seq"], iv=struct.pack("!Q", full))
    else:
        out = sa.decrypt(pkt)
    return bytes(out).hex()


def main():
    results = []
    for case in json.load(sys.stdin):
        try:
            results.append(run(case))
        except Exception as e:  # reported to the Rust side, which fails the test with it
            results.append({"error": f"{type(e).__name__}: {e}"})
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
