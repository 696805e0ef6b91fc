//! H.245 (MULTIMEDIA-SYSTEM-CONTROL): the walker of a MultimediaSystemControlMessage to the
//! media addresses of OpenLogicalChannel and OpenLogicalChannelAck, and of an
//! OpenLogicalChannel alone (each element of H.225.0's `fastStart` is one).
//!
//! The addresses: `mediaChannel` (RTP) and `mediaControlChannel` (RTCP) of the
//! H2250LogicalChannelParameters of the forward and reverse parameters, and of the
//! H2250LogicalChannelAckParameters of an acknowledgement; and the `localAreaAddress` of a
//! `separateStack` (the T.120 connection of a data channel).

use super::per::{Choice, PerReader, PerResult};
use super::types::{
    DATA_TYPE, DISTRIBUTION, E164_ADDRESS, H222_LOGICAL_CHANNEL_PARAMETERS,
    H223_LOGICAL_CHANNEL_PARAMETERS, MULTICAST_ADDRESS, NON_STANDARDS_H245, Q2931_ADDRESS,
    UNICAST_ADDRESS, V76_LOGICAL_CHANNEL_PARAMETERS,
};
use super::{ip4, ip6, skip_alt, Addr, Field, Msg, Walk};

/// Walks a MultimediaSystemControlMessage; other messages than the two with addresses are
/// only recognised. Returns the message read, if one of the two.
pub fn walk(r: &mut PerReader<'_>, w: &mut Walk) -> PerResult<Option<Msg>> {
    // MultimediaSystemControlMessage ::= CHOICE { request, response, command, indication, ... }
    match r.choice(true, 4)? {
        // RequestMessage: 11 root alternatives; openLogicalChannel is the fourth.
        Choice::Root(0) => match r.choice(true, 11)? {
            Choice::Root(3) => olc(r, w).map(|()| Some(Msg::Olc)),
            _ => Ok(None),
        },
        // ResponseMessage: 19 root alternatives; openLogicalChannelAck is the sixth.
        Choice::Root(1) => match r.choice(true, 19)? {
            Choice::Root(5) => olc_ack(r, w).map(|()| Some(Msg::OlcAck)),
            _ => Ok(None),
        },
        _ => Ok(None),
    }
}

/// OpenLogicalChannel ::= SEQUENCE { forwardLogicalChannelNumber, forwardLogicalChannelParameters,
/// reverseLogicalChannelParameters OPTIONAL, ..., separateStack OPTIONAL, ... }
pub fn olc(r: &mut PerReader<'_>, w: &mut Walk) -> PerResult<()> {
    let (ext, m) = r.preamble(true, 1)?;
    r.constrained(65535)?; // forwardLogicalChannelNumber (1..65535)
                           // forwardLogicalChannelParameters ::= SEQUENCE { portNumber INTEGER (0..65535) OPTIONAL,
                           // dataType, multiplexParameters CHOICE { h222, h223, v76, ..., h2250, none }, ... }
    let (fext, fm) = r.preamble(true, 1)?;
    if fm & 1 == 1 {
        r.constrained(65536)?;
    }
    r.skip(&DATA_TYPE)?;
    match r.choice(true, 3)? {
        Choice::Ext(0, mut sub) => h2250_parameters(&mut sub, w, Msg::Olc)?,
        Choice::Ext(..) => {}
        Choice::Root(0) => r.skip(&H222_LOGICAL_CHANNEL_PARAMETERS)?,
        Choice::Root(1) => r.skip(&H223_LOGICAL_CHANNEL_PARAMETERS)?,
        Choice::Root(_) => r.skip(&V76_LOGICAL_CHANNEL_PARAMETERS)?,
    }
    if fext {
        r.skip_additions()?;
    }
    if m & 1 == 1 {
        // reverseLogicalChannelParameters ::= SEQUENCE { dataType, multiplexParameters
        // CHOICE { h223, v76, ..., h2250 } OPTIONAL, ... }
        let (rext, rm) = r.preamble(true, 1)?;
        r.skip(&DATA_TYPE)?;
        if rm & 1 == 1 {
            match r.choice(true, 2)? {
                Choice::Ext(0, mut sub) => h2250_parameters(&mut sub, w, Msg::Olc)?,
                Choice::Ext(..) => {}
                Choice::Root(0) => r.skip(&H223_LOGICAL_CHANNEL_PARAMETERS)?,
                Choice::Root(_) => r.skip(&V76_LOGICAL_CHANNEL_PARAMETERS)?,
            }
        }
        if rext {
            r.skip_additions()?;
        }
    }
    if ext {
        // Additions: separateStack, encryptionSync, genericInformation.
        r.additions(|i, sub| match i {
            0 => separate_stack(sub, w, Msg::Olc),
            _ => Ok(()),
        })?;
    }
    Ok(())
}

/// OpenLogicalChannelAck ::= SEQUENCE { forwardLogicalChannelNumber,
/// reverseLogicalChannelParameters OPTIONAL, ..., separateStack OPTIONAL,
/// forwardMultiplexAckParameters OPTIONAL, ... }
fn olc_ack(r: &mut PerReader<'_>, w: &mut Walk) -> PerResult<()> {
    let (ext, m) = r.preamble(true, 1)?;
    r.constrained(65535)?;
    if m & 1 == 1 {
        // reverseLogicalChannelParameters ::= SEQUENCE { reverseLogicalChannelNumber,
        // portNumber OPTIONAL, multiplexParameters CHOICE { h222, ..., h2250 } OPTIONAL, ... }
        let (rext, rm) = r.preamble(true, 2)?;
        r.constrained(65535)?;
        if rm & 2 == 2 {
            r.constrained(65536)?;
        }
        if rm & 1 == 1 {
            match r.choice(true, 1)? {
                Choice::Ext(0, mut sub) => h2250_parameters(&mut sub, w, Msg::OlcAck)?,
                Choice::Ext(..) => {}
                Choice::Root(_) => r.skip(&H222_LOGICAL_CHANNEL_PARAMETERS)?,
            }
        }
        if rext {
            r.skip_additions()?;
        }
    }
    if ext {
        // Additions: separateStack, forwardMultiplexAckParameters, encryptionSync,
        // genericInformation.
        r.additions(|i, sub| match i {
            0 => separate_stack(sub, w, Msg::OlcAck),
            1 => match sub.choice(true, 1)? {
                // h2250LogicalChannelAckParameters
                Choice::Root(_) => h2250_ack_parameters(sub, w),
                Choice::Ext(..) => Ok(()),
            },
            _ => Ok(()),
        })?;
    }
    Ok(())
}

/// H2250LogicalChannelParameters ::= SEQUENCE { nonStandard OPTIONAL, sessionID,
/// associatedSessionID OPTIONAL, mediaChannel OPTIONAL, mediaGuaranteedDelivery OPTIONAL,
/// mediaControlChannel OPTIONAL, ... } (ten optional root components; read up to
/// mediaControlChannel, the rest of the open type is not needed).
fn h2250_parameters(r: &mut PerReader<'_>, w: &mut Walk, msg: Msg) -> PerResult<()> {
    let (_, m) = r.preamble(true, 10)?;
    let has = |k: u32| m >> (9 - k) & 1 == 1;
    if has(0) {
        r.skip(&NON_STANDARDS_H245)?;
    }
    r.constrained(256)?; // sessionID (0..255)
    if has(1) {
        r.constrained(255)?; // associatedSessionID (1..255)
    }
    if has(2) {
        let a = address(r)?;
        w.push(msg, Field::MediaChannel, a);
    }
    if has(3) {
        r.bit()?;
    }
    if has(4) {
        let a = address(r)?;
        w.push(msg, Field::MediaControlChannel, a);
    }
    Ok(())
}

/// H2250LogicalChannelAckParameters ::= SEQUENCE { nonStandard OPTIONAL, sessionID
/// OPTIONAL, mediaChannel OPTIONAL, mediaControlChannel OPTIONAL, dynamicRTPPayloadType
/// OPTIONAL, ... }
fn h2250_ack_parameters(r: &mut PerReader<'_>, w: &mut Walk) -> PerResult<()> {
    let (_, m) = r.preamble(true, 5)?;
    let has = |k: u32| m >> (4 - k) & 1 == 1;
    if has(0) {
        r.skip(&NON_STANDARDS_H245)?;
    }
    if has(1) {
        r.constrained(255)?; // sessionID (1..255)
    }
    if has(2) {
        let a = address(r)?;
        w.push(Msg::OlcAck, Field::MediaChannel, a);
    }
    if has(3) {
        let a = address(r)?;
        w.push(Msg::OlcAck, Field::MediaControlChannel, a);
    }
    Ok(())
}

/// NetworkAccessParameters ::= SEQUENCE { distribution OPTIONAL, networkAddress CHOICE {
/// q2931Address, e164Address, localAreaAddress, ... }, ... }: the T.120 address.
fn separate_stack(r: &mut PerReader<'_>, w: &mut Walk, msg: Msg) -> PerResult<()> {
    let (_, m) = r.preamble(true, 2)?;
    if m & 2 == 2 {
        r.skip(&DISTRIBUTION)?;
    }
    match r.choice(true, 3)? {
        Choice::Root(0) => r.skip(&Q2931_ADDRESS),
        Choice::Root(1) => r.skip(&E164_ADDRESS),
        Choice::Root(_) => {
            let a = address(r)?;
            w.push(msg, Field::SeparateStack, a);
            Ok(())
        }
        // associateConference and externalReference follow; the open type ends the value.
        Choice::Ext(..) => Ok(()),
    }
}

/// TransportAddress (H.245) ::= CHOICE { unicastAddress, multicastAddress, ... }: the
/// address of an `iPAddress` or `iP6Address`, None for the others.
pub fn address(r: &mut PerReader<'_>) -> PerResult<Option<Addr>> {
    let multicast = match r.choice(true, 2)? {
        Choice::Ext(..) => return Ok(None),
        Choice::Root(i) => i == 1,
    };
    let (root, skip) = if multicast {
        (2, &MULTICAST_ADDRESS)
    } else {
        (5, &UNICAST_ADDRESS)
    };
    let i = match r.choice(true, root)? {
        Choice::Ext(..) => return Ok(None),
        Choice::Root(i) => i,
    };
    // iPAddress is the first alternative of both, iP6Address the third of UnicastAddress
    // and the second of MulticastAddress: SEQUENCE { network, tsapIdentifier, ... }.
    let v6 = if multicast { i == 1 } else { i == 2 };
    if i != 0 && !v6 {
        skip_alt(r, skip, i)?;
        return Ok(None);
    }
    let ext = r.bit()?;
    let mut a = if v6 { ip6(r)? } else { ip4(r)? };
    if ext {
        r.skip_additions()?;
    }
    a.multicast = multicast;
    Ok(Some(a))
}
