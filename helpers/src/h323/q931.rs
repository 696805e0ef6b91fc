//! Call signalling (H.225.0 over Q.931 over TPKT, TCP 1720): TPKT framing (RFC 1006: version
//! 3, a reserved octet, a 16-bit length counting the 4-octet header), the Q.931 message
//! (protocol discriminator 8, call reference, message type, information elements) and, in its
//! User-user element (H.225.0 gives it a 2-octet length), the H323-UserInformation, walked to
//! the addresses of its UUIE and to the H.245 messages it carries: each element of
//! `fastStart` (an OpenLogicalChannel) and of `h245Control` and `parallelH245Control` (a
//! tunnelled MultimediaSystemControlMessage).

use super::per::{Choice, PerError, PerReader, PerResult};
use super::types::{
    ALIASES, CALL_IDENTIFIER, CALL_REFERENCE_VALUES, CALL_TYPE, CLEAR_TOKENS, CONFERENCE_GOAL,
    CRYPTO_H323_TOKENS, ENDPOINT_TYPE, FACILITY_REASON, H245_SECURITY, NON_STANDARD_PARAMETER,
    OCTETS_16, OID, QSERIES_OPTIONS, RELEASE_COMPLETE_REASON,
};
use super::{h225_address, h245, Field, Msg, Walk};
use crate::chain::Chain;

/// The Q.931 protocol discriminator.
const Q931_PD: u8 = 0x08;
/// The User-user information element.
const USER_USER: u8 = 0x7e;

/// Walks one TPKT-framed Q.931 message: chain bytes `start..end` (header included).
/// Returns the Q.931 message type and the UUIE read (None: no User-user element, or one of
/// the UUIEs without addresses).
pub fn walk_message(
    parts: &[&[u8]],
    start: usize,
    end: usize,
    w: &mut Walk,
) -> Result<(u8, Option<Msg>), PerError> {
    let c = Chain::new(parts);
    let bad = |at: usize, what| PerError {
        kind: super::per::PerErrorKind::Invalid(what),
        at: (at - start) * 8,
    };
    let short = |at: usize| PerError {
        kind: super::per::PerErrorKind::Truncated,
        at: (at - start) * 8,
    };
    let byte = |at: usize| {
        if at < end {
            c.byte(at).ok_or_else(|| short(at))
        } else {
            Err(short(at))
        }
    };
    let mut at = start + 4;
    if byte(at)? != Q931_PD {
        return Err(bad(at, "not a Q.931 protocol discriminator"));
    }
    let crl = usize::from(byte(at + 1)? & 0x0f);
    at += 2 + crl;
    let mt = byte(at)?;
    at += 1;
    while at < end {
        let id = byte(at)?;
        if id & 0x80 != 0 {
            at += 1; // a single-octet element
            continue;
        }
        if id == USER_USER {
            let len = usize::from(byte(at + 1)?) << 8 | usize::from(byte(at + 2)?);
            let body = at + 3;
            if body + len > end {
                return Err(short(end));
            }
            if len < 1 {
                return Err(bad(body, "empty User-user element"));
            }
            // A protocol discriminator octet (5: X.208/X.209 coded), then the PER encoding.
            let mut r = PerReader::window(parts, body + 1, body + len);
            return user_information(&mut r, w).map(|m| (mt, m));
        }
        at += 2 + usize::from(byte(at + 1)?);
    }
    Ok((mt, None))
}

/// H323-UserInformation ::= SEQUENCE { h323-uu-pdu H323-UU-PDU, user-data OPTIONAL, ... }
/// H323-UU-PDU ::= SEQUENCE { h323-message-body CHOICE { setup, callProceeding, connect,
/// alerting, information, releaseComplete, facility, ..., progress, ... }, nonStandardData
/// OPTIONAL, ..., h4501SupplementaryService, h245Tunnelling, h245Control, ... }
pub fn user_information(r: &mut PerReader<'_>, w: &mut Walk) -> PerResult<Option<Msg>> {
    r.preamble(true, 1)?;
    let (ext, m) = r.preamble(true, 1)?;
    let msg = match r.choice(true, 7)? {
        Choice::Root(0) => Some(setup(r, w)?),
        Choice::Root(1) => Some(call_proceeding(r, w)?),
        Choice::Root(2) => Some(connect(r, w)?),
        Choice::Root(3) => Some(alerting(r, w)?),
        Choice::Root(4) => Some(information(r, w)?),
        Choice::Root(5) => Some(release_complete(r, w)?),
        Choice::Root(_) => Some(facility(r, w)?),
        Choice::Ext(0, mut sub) => Some(progress(&mut sub, w)?),
        // empty, status, statusInquiry, setupAcknowledge, notify: no address, but the
        // tunnelled H.245 messages after them count.
        Choice::Ext(..) => None,
    };
    if m & 1 == 1 {
        r.skip(&NON_STANDARD_PARAMETER)?;
    }
    if ext {
        r.additions(|i, sub| match i {
            2 => tunnelled(sub, w),
            _ => Ok(()),
        })?;
    }
    Ok(msg)
}

/// `SEQUENCE OF OCTET STRING`, each a MultimediaSystemControlMessage (`h245Control`,
/// `parallelH245Control`). A message that does not read is recorded and skipped.
fn tunnelled(r: &mut PerReader<'_>, w: &mut Walk) -> PerResult<()> {
    octet_strings(r, w, |sub, w| h245::walk(sub, w).map(drop))
}

/// `fastStart SEQUENCE OF OCTET STRING`, each an OpenLogicalChannel.
fn fast_start(r: &mut PerReader<'_>, w: &mut Walk) -> PerResult<()> {
    octet_strings(r, w, h245::olc)
}

/// Reads a SEQUENCE OF OCTET STRING, calling `each` on a reader of each string. Faults
/// inside a string are kept in `w.inner_errors`; faults of the sequence itself are errors.
fn octet_strings(
    r: &mut PerReader<'_>,
    w: &mut Walk,
    each: impl Fn(&mut PerReader<'_>, &mut Walk) -> PerResult<()>,
) -> PerResult<()> {
    r.check_depth(1)?;
    loop {
        let l = r.length(0, None)?;
        for _ in 0..l.n {
            let n = r.whole_length()?;
            let at = r.octets(n)?;
            let mut sub = r.sub(at, n);
            let before = w.found.len();
            if let Err(e) = each(&mut sub, w) {
                // Half a message is no message: drop what it gave.
                w.found.truncate(before);
                w.inner_errors.push(e);
            }
        }
        if !l.more {
            return Ok(());
        }
    }
}

fn has(mask: u64, opt: u32, k: u32) -> bool {
    mask >> (opt - 1 - k) & 1 == 1
}

/// Setup-UUIE ::= SEQUENCE { protocolIdentifier, h245Address OPTIONAL, sourceAddress
/// OPTIONAL, sourceInfo, destinationAddress OPTIONAL, destCallSignalAddress OPTIONAL,
/// destExtraCallInfo OPTIONAL, destExtraCRV OPTIONAL, activeMC, conferenceID,
/// conferenceGoal, callServices OPTIONAL, callType, ..., sourceCallSignalAddress (0),
/// fastStart (6), parallelH245Control (24), ... }
fn setup(r: &mut PerReader<'_>, w: &mut Walk) -> PerResult<Msg> {
    const M: Msg = Msg::Setup;
    let (ext, m) = r.preamble(true, 7)?;
    r.skip(&OID)?;
    if has(m, 7, 0) {
        let a = h225_address(r)?;
        w.push(M, Field::H245Address, a);
    }
    if has(m, 7, 1) {
        r.skip(&ALIASES)?;
    }
    r.skip(&ENDPOINT_TYPE)?;
    if has(m, 7, 2) {
        r.skip(&ALIASES)?;
    }
    if has(m, 7, 3) {
        let a = h225_address(r)?;
        w.push(M, Field::DestCallSignalAddress, a);
    }
    if has(m, 7, 4) {
        r.skip(&ALIASES)?;
    }
    if has(m, 7, 5) {
        // destExtraCRV SEQUENCE OF CallReferenceValue (0..65535)
        r.skip(&CALL_REFERENCE_VALUES)?;
    }
    r.bit()?; // activeMC
    r.skip(&OCTETS_16)?;
    r.skip(&CONFERENCE_GOAL)?;
    if has(m, 7, 6) {
        r.skip(&QSERIES_OPTIONS)?;
    }
    r.skip(&CALL_TYPE)?;
    if ext {
        r.additions(|i, sub| match i {
            0 => {
                let a = h225_address(sub)?;
                w.push(M, Field::SourceCallSignalAddress, a);
                Ok(())
            }
            6 => fast_start(sub, w),
            24 => tunnelled(sub, w),
            _ => Ok(()),
        })?;
    }
    Ok(M)
}

/// The additions of CallProceeding, Connect and Alerting: fastStart is the fifth.
fn fast_start_addition(r: &mut PerReader<'_>, w: &mut Walk, index: usize) -> PerResult<()> {
    r.additions(|i, sub| {
        if i == index {
            fast_start(sub, w)
        } else {
            Ok(())
        }
    })
}

/// CallProceeding-UUIE ::= SEQUENCE { protocolIdentifier, destinationInfo, h245Address
/// OPTIONAL, ..., callIdentifier, h245SecurityMode, tokens, cryptoTokens, fastStart, ... }
fn call_proceeding(r: &mut PerReader<'_>, w: &mut Walk) -> PerResult<Msg> {
    const M: Msg = Msg::CallProceeding;
    let (ext, m) = r.preamble(true, 1)?;
    r.skip(&OID)?;
    r.skip(&ENDPOINT_TYPE)?;
    if m & 1 == 1 {
        let a = h225_address(r)?;
        w.push(M, Field::H245Address, a);
    }
    if ext {
        fast_start_addition(r, w, 4)?;
    }
    Ok(M)
}

/// Connect-UUIE ::= SEQUENCE { protocolIdentifier, h245Address OPTIONAL, destinationInfo,
/// conferenceID, ..., callIdentifier, h245SecurityMode, tokens, cryptoTokens, fastStart, ... }
fn connect(r: &mut PerReader<'_>, w: &mut Walk) -> PerResult<Msg> {
    const M: Msg = Msg::Connect;
    let (ext, m) = r.preamble(true, 1)?;
    r.skip(&OID)?;
    if m & 1 == 1 {
        let a = h225_address(r)?;
        w.push(M, Field::H245Address, a);
    }
    r.skip(&ENDPOINT_TYPE)?;
    r.skip(&OCTETS_16)?;
    if ext {
        fast_start_addition(r, w, 4)?;
    }
    Ok(M)
}

/// Alerting-UUIE ::= SEQUENCE { protocolIdentifier, destinationInfo, h245Address OPTIONAL,
/// ..., callIdentifier, h245SecurityMode, tokens, cryptoTokens, fastStart, ... }
fn alerting(r: &mut PerReader<'_>, w: &mut Walk) -> PerResult<Msg> {
    const M: Msg = Msg::Alerting;
    let (ext, m) = r.preamble(true, 1)?;
    r.skip(&OID)?;
    r.skip(&ENDPOINT_TYPE)?;
    if m & 1 == 1 {
        let a = h225_address(r)?;
        w.push(M, Field::H245Address, a);
    }
    if ext {
        fast_start_addition(r, w, 4)?;
    }
    Ok(M)
}

/// Information-UUIE ::= SEQUENCE { protocolIdentifier, ..., callIdentifier, tokens,
/// cryptoTokens, fastStart, ... }
fn information(r: &mut PerReader<'_>, w: &mut Walk) -> PerResult<Msg> {
    let (ext, _) = r.preamble(true, 0)?;
    r.skip(&OID)?;
    if ext {
        fast_start_addition(r, w, 3)?;
    }
    Ok(Msg::Information)
}

/// ReleaseComplete-UUIE ::= SEQUENCE { protocolIdentifier, reason OPTIONAL, ... }: no
/// address, read for the tunnelled H.245 messages after it.
fn release_complete(r: &mut PerReader<'_>, _w: &mut Walk) -> PerResult<Msg> {
    let (ext, m) = r.preamble(true, 1)?;
    r.skip(&OID)?;
    if m & 1 == 1 {
        r.skip(&RELEASE_COMPLETE_REASON)?;
    }
    if ext {
        r.skip_additions()?;
    }
    Ok(Msg::ReleaseComplete)
}

/// Facility-UUIE ::= SEQUENCE { protocolIdentifier, alternativeAddress OPTIONAL,
/// alternativeAliasAddress OPTIONAL, conferenceID OPTIONAL, reason, ..., callIdentifier,
/// destExtraCallInfo, remoteExtensionAddress, tokens, cryptoTokens, conferences,
/// h245Address (6), fastStart (7), ... }
fn facility(r: &mut PerReader<'_>, w: &mut Walk) -> PerResult<Msg> {
    const M: Msg = Msg::Facility;
    let (ext, m) = r.preamble(true, 3)?;
    r.skip(&OID)?;
    if has(m, 3, 0) {
        let a = h225_address(r)?;
        w.push(M, Field::AlternativeAddress, a);
    }
    if has(m, 3, 1) {
        r.skip(&ALIASES)?;
    }
    if has(m, 3, 2) {
        r.skip(&OCTETS_16)?;
    }
    r.skip(&FACILITY_REASON)?;
    if ext {
        r.additions(|i, sub| match i {
            6 => {
                let a = h225_address(sub)?;
                w.push(M, Field::H245Address, a);
                Ok(())
            }
            7 => fast_start(sub, w),
            _ => Ok(()),
        })?;
    }
    Ok(M)
}

/// Progress-UUIE ::= SEQUENCE { protocolIdentifier, destinationInfo, h245Address OPTIONAL,
/// callIdentifier, h245SecurityMode OPTIONAL, tokens OPTIONAL, cryptoTokens OPTIONAL,
/// fastStart OPTIONAL, ... } (in an open type: read up to fastStart).
fn progress(r: &mut PerReader<'_>, w: &mut Walk) -> PerResult<Msg> {
    const M: Msg = Msg::Progress;
    let (_, m) = r.preamble(true, 5)?;
    r.skip(&OID)?;
    r.skip(&ENDPOINT_TYPE)?;
    if has(m, 5, 0) {
        let a = h225_address(r)?;
        w.push(M, Field::H245Address, a);
    }
    r.skip(&CALL_IDENTIFIER)?;
    if has(m, 5, 1) {
        r.skip(&H245_SECURITY)?;
    }
    if has(m, 5, 2) {
        r.skip(&CLEAR_TOKENS)?;
    }
    if has(m, 5, 3) {
        r.skip(&CRYPTO_H323_TOKENS)?;
    }
    if has(m, 5, 4) {
        fast_start(r, w)?;
    }
    Ok(M)
}
