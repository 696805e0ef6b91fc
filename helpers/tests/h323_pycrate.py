#!/usr/bin/env python3
"""Random H.225.0 and H.245 messages encoded by pycrate (an independent PER codec), with the
transport addresses they hold in the fields tunfilter's H.323 walkers read.

    h323_pycrate.py COUNT SEED

prints COUNT lines `kind<TAB>hex<TAB>addresses`: kind is `ras` (a RasMessage), `uuie` (an
H323-UserInformation) or `h245` (a MultimediaSystemControlMessage); hex is the ALIGNED PER
encoding; addresses is a `;`-separated list of `message.field=address/port` (with `/m` after
a multicast address), in no particular order. Every optional component, choice alternative
and list length is drawn at random (the same SEED gives the same messages), addresses are
IPv4 or IPv6, and `fastStart` and `h245Control` carry encoded H.245 messages of their own.
Used by helpers/tests/h323_pycrate.rs.
"""
import ipaddress
import random
import sys

from pycrate_asn1dir import H225, H245
from pycrate_asn1rt.codecs import ASN1CodecPER

# pycrate 0.8.1 encodes a SEQUENCE's extension additions before it writes their bitmap, and
# pads the first one for the bit offset *before* the bitmap: after the (realigned) bitmap an
# extra octet appears, which its own decoder (rightly) does not read. The additions follow
# the realigned bitmap, so none needs a pad: while the SEQUENCE encoder builds them (its
# frame has `_gen_ext`), the offset is made to look aligned, and put back after, so that the
# bitmap's realignment is computed from the true offset.
_encode_open = ASN1CodecPER.encode_unconst_open.__func__


def _encode_open_fixed(cla, wrapped):
    if cla.ALIGNED and "_gen_ext" in sys._getframe(1).f_locals:
        saved = cla._off[-1]
        cla._off[-1] = 0
        try:
            return _encode_open(cla, wrapped)
        finally:
            cla._off[-1] = saved
    return _encode_open(cla, wrapped)


ASN1CodecPER.encode_unconst_open = classmethod(_encode_open_fixed)

RAS = H225.H323_MESSAGES.RasMessage
UUIE = H225.H323_MESSAGES.H323_UserInformation
MSC = H245.MULTIMEDIA_SYSTEM_CONTROL.MultimediaSystemControlMessage
OLC = H245.MULTIMEDIA_SYSTEM_CONTROL.OpenLogicalChannel

PROTOCOL_ID = (0, 0, 8, 2250, 0, 7)


# pycrate's compiled H.245 module lacks the extension marker of H262VideoCapability (whose
# videoBadMBsCap is an extension addition in the ITU-T module, as Wireshark reads it too):
# its encodings of that type are not H.245's.
AVOID = {"h262VideoCapability"}


class Skip(Exception):
    """A type this generator does not make values of (an open type)."""


def rnd_int(t):
    cv = t._const_val
    if cv is not None and cv.root:
        r = random.choice(cv.root)
        if isinstance(r, int):
            return r
        lb = r.lb if r.lb is not None else -1000
        ub = r.ub if r.ub is not None else lb + 100000
        return random.choice([lb, ub, random.randint(lb, ub)])
    return random.choice([0, 1, 255, 256, 65535, 70000, 2**40])


def rnd_size(t, cap):
    cz = t._const_sz
    if cz is not None and cz.root:
        r = cz.root[0]
        if isinstance(r, int):
            return r
        lb = r.lb or 0
        ub = min(r.ub if r.ub is not None else lb + cap, lb + cap)
        return random.randint(lb, ub)
    return random.randint(0, cap)


def address(t, name):
    """A value for the address alternatives, biased towards real addresses."""
    if name in ("ip", "network"):
        n = rnd_size(t, 16)
        return bytes(random.getrandbits(8) for _ in range(n))
    return None


def value(t, depth):
    T = t.TYPE
    if depth > 14:
        raise Skip()
    if T == "NULL":
        return 0
    if T == "BOOLEAN":
        return random.random() < 0.5
    if T == "INTEGER":
        return rnd_int(t)
    if T == "ENUMERATED":
        return random.choice(t._root)
    if T == "OCTET STRING":
        return bytes(random.getrandbits(8) for _ in range(rnd_size(t, 6)))
    if T == "BIT STRING":
        n = rnd_size(t, 20)
        return (random.getrandbits(n) if n else 0, n)
    if T == "OBJECT IDENTIFIER":
        return random.choice([PROTOCOL_ID, (1, 2, 840, 113549), (0, 4, 0, 127, 0, 7)])
    if T in ("IA5String", "BMPString", "NumericString", "PrintableString", "VisibleString",
             "GeneralString", "UTF8String"):
        ca = t._const_alpha
        if ca is not None and ca.root:
            alpha = "".join(ca.root)
        elif T == "NumericString":
            alpha = "0123456789 "
        else:
            alpha = "abcXYZ09 :@."
        return "".join(random.choice(alpha) for _ in range(rnd_size(t, 6)))
    if T in ("SEQUENCE", "SET"):
        v = {}
        for k in t._root + (t._ext or []):
            c = t._cont[k]
            if getattr(c, "_opt", False) or k in (t._ext or []):
                if random.random() < max(0.05, 0.6 - 0.06 * depth):
                    try:
                        v[k] = value(c, depth + 1)
                    except Skip:
                        pass
            else:
                v[k] = value(c, depth + 1)
        return v
    if T == "CHOICE":
        names = [n for n in list(t._root) + list(t._ext or []) if n not in AVOID]
        random.shuffle(names)
        # Real addresses most of the time.
        for pref in ("ipAddress", "ip6Address", "iPAddress", "iP6Address", "unicastAddress"):
            if pref in names and random.random() < 0.7:
                names.remove(pref)
                names.insert(0, pref)
        for k in names:
            try:
                return (k, value(t._cont[k], depth + 1))
            except Skip:
                continue
        raise Skip()
    if T in ("SEQUENCE OF", "SET OF"):
        # Never empty: pycrate does not read back an empty list in an extension addition.
        n = max(1, rnd_size(t, 2 if depth < 8 else 0))
        return [value(t._cont, depth + 1) for _ in range(n)]
    raise Skip()


def fmt_addr(v, multicast=False):
    """An H.225.0 or H.245 TransportAddress value -> 'ip/port', or None."""
    name, inner = v
    if name == "unicastAddress":
        return fmt_addr(inner)
    if name == "multicastAddress":
        return fmt_addr(inner, True)
    if name in ("ipAddress", "ip6Address"):
        ip, port = inner["ip"], inner["port"]
    elif name in ("iPAddress", "iP6Address"):
        ip, port = inner["network"], inner["tsapIdentifier"]
    else:
        return None
    s = f"{ipaddress.ip_address(ip)}/{port}"
    return s + "/m" if multicast else s


def add(out, msg, field, v):
    a = fmt_addr(v)
    if a is not None:
        out.append(f"{msg}.{field}={a}")


RAS_FIELDS = {
    "gatekeeperRequest": ["rasAddress"],
    "gatekeeperConfirm": ["rasAddress"],
    "registrationRequest": ["callSignalAddress", "rasAddress"],
    "registrationConfirm": ["callSignalAddress"],
    "admissionRequest": ["destCallSignalAddress", "srcCallSignalAddress"],
    "admissionConfirm": ["destCallSignalAddress"],
    "locationRequest": ["replyAddress"],
    "locationConfirm": ["callSignalAddress", "rasAddress"],
}

UUIE_FIELDS = {
    "setup": ["h245Address", "destCallSignalAddress", "sourceCallSignalAddress"],
    "callProceeding": ["h245Address"],
    "connect": ["h245Address"],
    "alerting": ["h245Address"],
    "information": [],
    "releaseComplete": [],
    "facility": ["alternativeAddress", "h245Address"],
    "progress": ["h245Address"],
}


# The UUIEs with a fastStart component.
FAST_START = {"setup", "callProceeding", "connect", "alerting", "information", "facility",
              "progress"}


def h2250(v, msg, out):
    for f in ("mediaChannel", "mediaControlChannel"):
        if f in v:
            add(out, msg, f, v[f])


def separate_stack(v, msg, out):
    na = v["networkAddress"]
    if na[0] == "localAreaAddress":
        add(out, msg, "separateStack", na[1])


def olc_addresses(v, out):
    m = "openLogicalChannel"
    mp = v["forwardLogicalChannelParameters"]["multiplexParameters"]
    if mp[0] == "h2250LogicalChannelParameters":
        h2250(mp[1], m, out)
    rev = v.get("reverseLogicalChannelParameters")
    if rev and "multiplexParameters" in rev and rev["multiplexParameters"][0] == "h2250LogicalChannelParameters":
        h2250(rev["multiplexParameters"][1], m, out)
    if "separateStack" in v:
        separate_stack(v["separateStack"], m, out)


def olc_ack_addresses(v, out):
    m = "openLogicalChannelAck"
    rev = v.get("reverseLogicalChannelParameters")
    if rev and "multiplexParameters" in rev and rev["multiplexParameters"][0] == "h2250LogicalChannelParameters":
        h2250(rev["multiplexParameters"][1], m, out)
    if "separateStack" in v:
        separate_stack(v["separateStack"], m, out)
    fm = v.get("forwardMultiplexAckParameters")
    if fm and fm[0] == "h2250LogicalChannelAckParameters":
        h2250(fm[1], m, out)


def random_olc(out):
    """An encoded OpenLogicalChannel with H.225.0 parameters most of the time."""
    v = value(OLC, 3)
    if random.random() < 0.8:
        v["forwardLogicalChannelParameters"]["multiplexParameters"] = (
            "h2250LogicalChannelParameters",
            value(OLC._cont["forwardLogicalChannelParameters"]._cont["multiplexParameters"]._cont["h2250LogicalChannelParameters"], 4))
    data = checked(OLC, v)
    olc_addresses(v, out)
    return data


def random_msc(out):
    """An encoded MultimediaSystemControlMessage, an OLC or OLC ack most of the time."""
    r = random.random()
    if r < 0.4:
        v = ("request", ("openLogicalChannel", value(OLC, 3)))
    elif r < 0.8:
        ack = MSC._cont["response"]._cont["openLogicalChannelAck"]
        v = ("response", ("openLogicalChannelAck", value(ack, 3)))
    else:
        v = value(MSC, 6)
    data = checked(MSC, v)
    if v[0] == "request" and v[1][0] == "openLogicalChannel":
        olc_addresses(v[1][1], out)
    if v[0] == "response" and v[1][0] == "openLogicalChannelAck":
        olc_ack_addresses(v[1][1], out)
    return data


def random_ras():
    name = random.choice(list(RAS_FIELDS) + ["disengageRequest", "infoRequest"])
    v = value(RAS._cont[name], 1)
    out = []
    for f in RAS_FIELDS.get(name, []):
        if f in v:
            x = v[f]
            for a in x if isinstance(x, list) else [x]:
                add(out, name, f, a)
    return "ras", checked(RAS, (name, v)), out


def random_uuie():
    body = UUIE._cont["h323-uu-pdu"]._cont["h323-message-body"]
    name = random.choice(list(UUIE_FIELDS) + ["status", "empty"])
    b = value(body._cont[name], 2)
    out = []
    for f in UUIE_FIELDS.get(name, []):
        if f in b:
            add(out, name, f, b[f])
    if isinstance(b, dict) and name in FAST_START:
        if random.random() < 0.5:
            b["fastStart"] = [random_olc(out) for _ in range(random.randint(0, 3))]
        elif "fastStart" in b:
            b["fastStart"] = [random_olc(out) for _ in b["fastStart"]]
        if name == "setup" and random.random() < 0.2:
            b["parallelH245Control"] = [random_msc(out)]
        elif "parallelH245Control" in b:
            b["parallelH245Control"] = [random_msc(out) for _ in b["parallelH245Control"]]
    pdu = value(UUIE._cont["h323-uu-pdu"], 2)
    pdu["h323-message-body"] = (name, b)
    if random.random() < 0.5:
        pdu["h245Control"] = [random_msc(out) for _ in range(random.randint(0, 2))]
    elif "h245Control" in pdu:
        pdu["h245Control"] = [random_msc(out) for _ in pdu["h245Control"]]
    v = {"h323-uu-pdu": pdu}
    if random.random() < 0.3:
        v["user-data"] = {"protocol-discriminator": 5, "user-information": b"x"}
    return "uuie", checked(UUIE, v), out


def random_h245():
    out = []
    data = random_msc(out)
    return "h245", data, out


def checked(t, v):
    """Encodes `v` as `t`, and only if pycrate reads its own encoding back to the same bytes
    (it does not for a few corner values; those are drawn again)."""
    t.set_val(v)
    data = t.to_aper()
    t.from_aper(data)
    if t.to_aper() != data:
        raise ValueError("pycrate does not read its own encoding back")
    return data


def main():
    count, seed = int(sys.argv[1]), int(sys.argv[2])
    random.seed(seed)
    made = 0
    skipped = [0]
    while made < count:
        gen = random.choice([random_ras, random_uuie, random_uuie, random_h245])
        try:
            kind, data, out = gen()
        except Skip:
            continue
        except Exception:  # a value pycrate will not encode or decode: draw again
            skipped[0] += 1
            continue
        print(f"{kind}\t{data.hex()}\t{';'.join(out)}")
        made += 1
    print(f"{skipped[0]} values drawn again", file=sys.stderr)
    if skipped[0] > count:
        sys.exit(f"pycrate refused {skipped[0]} of the generated values: the generator is off")


if __name__ == "__main__":
    main()
