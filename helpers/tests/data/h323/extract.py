#!/usr/bin/env python3
"""Extracts the H.323 messages of a capture, and the transport addresses tshark decodes in
them, into the two tables the helper's tests read (see README.md beside this file).

    python3 extract.py ../../../../tests/data/pcap/ndpi-h323.pcap

writes messages.tsv (frame, proto, src, sport, dst, dport, TCP sequence number, payload in
hex) and addresses.tsv (frame, message, field, address, port, direct), from
`tshark -d tcp.port==1232,h245` (the capture's H.245 connection is on port 1232).
`direct` is 1 when the field is a component of the message itself (or of the logical channel
parameters of an H.245 message), 0 when it is nested deeper (an alternate gatekeeper's
rasAddress, say), which the helper does not read.
"""
import json
import subprocess
import sys

PCAP = sys.argv[1]
TSHARK = ["tshark", "-r", PCAP, "-d", "tcp.port==1232,h245"]

MESSAGES = {
    "gatekeeperRequest", "gatekeeperConfirm", "registrationRequest", "registrationConfirm",
    "admissionRequest", "admissionConfirm", "locationRequest", "locationConfirm",
    "setup", "callProceeding", "connect", "alerting", "information", "releaseComplete",
    "facility", "progress", "openLogicalChannel", "openLogicalChannelAck",
}
FIELDS = {
    "rasAddress", "replyAddress", "callSignalAddress", "destCallSignalAddress",
    "srcCallSignalAddress", "sourceCallSignalAddress", "alternativeAddress", "h245Address",
    "mediaChannel", "mediaControlChannel", "localAreaAddress",
}
# What may lie between a message and one of its fields for the field to be "direct".
CONTAINERS = {
    "forwardLogicalChannelParameters", "reverseLogicalChannelParameters",
    "multiplexParameters", "h2250LogicalChannelParameters", "forwardMultiplexAckParameters",
    "h2250LogicalChannelAckParameters", "separateStack", "networkAddress",
}
IP = {"h225.ipV4", "h225.h245Ip", "h245.ip4_network", "h225.ipV6", "h225.h245Ip6",
      "h245.ip6_network"}
PORT = {"h225.ipV4_port", "h225.h245IpPort", "h245.tsapIdentifier", "h225.ipV6_port",
        "h225.h245Ip6port"}


def name(key):
    """h225.setup_element -> setup"""
    k = key.split(".", 1)[-1]
    for suffix in ("_element", "_tree"):
        if k.endswith(suffix):
            k = k[: -len(suffix)]
    return k


def addresses(frame, layers, out):
    def walk(o, path):
        if isinstance(o, dict):
            ip = next((v for k, v in o.items() if k in IP), None)
            port = next((v for k, v in o.items() if k in PORT), None)
            if ip is not None and port is not None:
                names = [name(p) for p in path]
                mi = max((i for i, n in enumerate(names) if n in MESSAGES), default=None)
                fi = max((i for i, n in enumerate(names) if n in FIELDS), default=None)
                if mi is not None and fi is not None and fi > mi:
                    between = [n for n in names[mi + 1: fi] if n not in (
                        "TransportAddress", "unicastAddress", "iPAddress", "ipAddress")]
                    direct = all(n in CONTAINERS for n in between)
                    field = names[fi]
                    if field == "localAreaAddress":
                        field = "separateStack"
                    out.append((frame, names[mi], field, ip, port, int(direct)))
            for k, v in o.items():
                if isinstance(v, (dict, list)):
                    walk(v, path + [k])
        elif isinstance(o, list):
            for x in o:
                walk(x, path)

    walk({k: v for k, v in layers.items() if k in ("h225", "h245")}, [])


def main():
    fields = ["frame.number", "ip.src", "ip.dst", "tcp.srcport", "tcp.dstport", "udp.srcport",
              "udp.dstport", "tcp.seq_raw", "tcp.payload", "udp.payload"]
    cmd = TSHARK + ["-T", "fields", "-E", "separator=/t"]
    for f in fields:
        cmd += ["-e", f]
    rows = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    with open("messages.tsv", "w") as m:
        m.write("# frame\tproto\tsrc\tsport\tdst\tdport\tseq\tpayload\n")
        for line in rows.splitlines():
            c = line.split("\t")
            if c[8]:
                m.write("\t".join([c[0], "tcp", c[1], c[3], c[2], c[4], c[7], c[8]]) + "\n")
            elif c[9]:
                m.write("\t".join([c[0], "udp", c[1], c[5], c[2], c[6], "-", c[9]]) + "\n")
    js = subprocess.run(TSHARK + ["-T", "json"], check=True, capture_output=True,
                        text=True).stdout
    out = []
    for pkt in json.loads(js):
        layers = pkt["_source"]["layers"]
        addresses(layers["frame"]["frame.number"], layers, out)
    with open("addresses.tsv", "w") as a:
        a.write("# frame\tmessage\tfield\taddress\tport\tdirect\n")
        for row in out:
            a.write("\t".join(str(x) for x in row) + "\n")


main()
