//! RAS (H.225.0 registration, admission and status, UDP 1719): the walker of a RasMessage to
//! the transport addresses of GRQ/GCF, RRQ/RCF, ARQ/ACF and LRQ/LCF. Each message is read up
//! to its last address (the rest is not needed); every other message is only named.

use super::per::{Choice, PerReader, PerResult};
use super::types::{
    ALIASES, BMP_1_128, CALL_MODEL, CALL_TYPE, INT_0_4G, NON_STANDARD_PARAMETER, OID,
};
use super::{h225_address, h225_addresses, Field, Msg, Walk};

/// The RasMessage alternatives this walker reads (index in the root of the CHOICE).
const GRQ: u32 = 0;
const GCF: u32 = 1;
const RRQ: u32 = 3;
const RCF: u32 = 4;
const ARQ: u32 = 9;
const ACF: u32 = 10;
const LRQ: u32 = 18;
const LCF: u32 = 19;
/// Root alternatives of RasMessage (gatekeeperRequest .. unknownMessageResponse).
const ROOT: u32 = 25;

/// What kind of RAS message a datagram held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RasKind {
    /// One whose addresses are read.
    Known(Msg),
    /// Another root alternative (its index).
    Other(u32),
    /// An extension alternative (its index after the extension marker).
    Extension(u64),
}

/// Walks the RasMessage in `r`, reporting its addresses into `w`.
pub fn walk(r: &mut PerReader<'_>, w: &mut Walk) -> PerResult<RasKind> {
    let i = match r.choice(true, ROOT)? {
        Choice::Ext(i, _) => return Ok(RasKind::Extension(i)),
        Choice::Root(i) => i,
    };
    let msg = match i {
        GRQ => grq(r, w)?,
        GCF => gcf(r, w)?,
        RRQ => rrq(r, w)?,
        RCF => rcf(r, w)?,
        ARQ => arq(r, w)?,
        ACF => acf(r, w)?,
        LRQ => lrq(r, w)?,
        LCF => lcf(r, w)?,
        other => return Ok(RasKind::Other(other)),
    };
    Ok(RasKind::Known(msg))
}

/// `opt` presence bits, the one of component `k` (0-based among the optional ones).
fn has(mask: u64, opt: u32, k: u32) -> bool {
    mask >> (opt - 1 - k) & 1 == 1
}

/// GatekeeperRequest: requestSeqNum, protocolIdentifier, nonStandardData OPTIONAL,
/// rasAddress, ... (optional: nonStandardData, gatekeeperIdentifier, callServices,
/// endpointAlias).
fn grq(r: &mut PerReader<'_>, w: &mut Walk) -> PerResult<Msg> {
    let (_, m) = r.preamble(true, 4)?;
    r.constrained(65535)?; // requestSeqNum (1..65535)
    r.skip(&OID)?;
    if has(m, 4, 0) {
        r.skip(&NON_STANDARD_PARAMETER)?;
    }
    let a = h225_address(r)?;
    w.push(Msg::Grq, Field::RasAddress, a);
    Ok(Msg::Grq)
}

/// GatekeeperConfirm: requestSeqNum, protocolIdentifier, nonStandardData OPTIONAL,
/// gatekeeperIdentifier OPTIONAL, rasAddress, ...
fn gcf(r: &mut PerReader<'_>, w: &mut Walk) -> PerResult<Msg> {
    let (_, m) = r.preamble(true, 2)?;
    r.constrained(65535)?;
    r.skip(&OID)?;
    if has(m, 2, 0) {
        r.skip(&NON_STANDARD_PARAMETER)?;
    }
    if has(m, 2, 1) {
        r.skip(&BMP_1_128)?;
    }
    let a = h225_address(r)?;
    w.push(Msg::Gcf, Field::RasAddress, a);
    Ok(Msg::Gcf)
}

/// RegistrationRequest: requestSeqNum, protocolIdentifier, nonStandardData OPTIONAL,
/// discoveryComplete, callSignalAddress SEQUENCE OF, rasAddress SEQUENCE OF, ...
/// (optional: nonStandardData, terminalAlias, gatekeeperIdentifier).
fn rrq(r: &mut PerReader<'_>, w: &mut Walk) -> PerResult<Msg> {
    let (_, m) = r.preamble(true, 3)?;
    r.constrained(65535)?;
    r.skip(&OID)?;
    if has(m, 3, 0) {
        r.skip(&NON_STANDARD_PARAMETER)?;
    }
    r.bit()?; // discoveryComplete
    h225_addresses(r, w, Msg::Rrq, Field::CallSignalAddress)?;
    h225_addresses(r, w, Msg::Rrq, Field::RasAddress)?;
    Ok(Msg::Rrq)
}

/// RegistrationConfirm: requestSeqNum, protocolIdentifier, nonStandardData OPTIONAL,
/// callSignalAddress SEQUENCE OF, ... (optional: nonStandardData, terminalAlias,
/// gatekeeperIdentifier).
fn rcf(r: &mut PerReader<'_>, w: &mut Walk) -> PerResult<Msg> {
    let (_, m) = r.preamble(true, 3)?;
    r.constrained(65535)?;
    r.skip(&OID)?;
    if has(m, 3, 0) {
        r.skip(&NON_STANDARD_PARAMETER)?;
    }
    h225_addresses(r, w, Msg::Rcf, Field::CallSignalAddress)?;
    Ok(Msg::Rcf)
}

/// AdmissionRequest: requestSeqNum, callType, callModel OPTIONAL, endpointIdentifier,
/// destinationInfo OPTIONAL, destCallSignalAddress OPTIONAL, destExtraCallInfo OPTIONAL,
/// srcInfo, srcCallSignalAddress OPTIONAL, ... (optional: callModel, destinationInfo,
/// destCallSignalAddress, destExtraCallInfo, srcCallSignalAddress, nonStandardData,
/// callServices).
fn arq(r: &mut PerReader<'_>, w: &mut Walk) -> PerResult<Msg> {
    let (_, m) = r.preamble(true, 7)?;
    r.constrained(65535)?;
    r.skip(&CALL_TYPE)?;
    if has(m, 7, 0) {
        r.skip(&CALL_MODEL)?;
    }
    r.skip(&BMP_1_128)?; // endpointIdentifier
    if has(m, 7, 1) {
        r.skip(&ALIASES)?;
    }
    if has(m, 7, 2) {
        let a = h225_address(r)?;
        w.push(Msg::Arq, Field::DestCallSignalAddress, a);
    }
    if has(m, 7, 3) {
        r.skip(&ALIASES)?;
    }
    r.skip(&ALIASES)?; // srcInfo
    if has(m, 7, 4) {
        let a = h225_address(r)?;
        w.push(Msg::Arq, Field::SrcCallSignalAddress, a);
    }
    Ok(Msg::Arq)
}

/// AdmissionConfirm: requestSeqNum, bandWidth, callModel, destCallSignalAddress, ...
/// (optional: irrFrequency, nonStandardData).
fn acf(r: &mut PerReader<'_>, w: &mut Walk) -> PerResult<Msg> {
    r.preamble(true, 2)?;
    r.constrained(65535)?;
    r.skip(&INT_0_4G)?;
    r.skip(&CALL_MODEL)?;
    let a = h225_address(r)?;
    w.push(Msg::Acf, Field::DestCallSignalAddress, a);
    Ok(Msg::Acf)
}

/// LocationRequest: requestSeqNum, endpointIdentifier OPTIONAL, destinationInfo,
/// nonStandardData OPTIONAL, replyAddress, ...
fn lrq(r: &mut PerReader<'_>, w: &mut Walk) -> PerResult<Msg> {
    let (_, m) = r.preamble(true, 2)?;
    r.constrained(65535)?;
    if has(m, 2, 0) {
        r.skip(&BMP_1_128)?;
    }
    r.skip(&ALIASES)?;
    if has(m, 2, 1) {
        r.skip(&NON_STANDARD_PARAMETER)?;
    }
    let a = h225_address(r)?;
    w.push(Msg::Lrq, Field::ReplyAddress, a);
    Ok(Msg::Lrq)
}

/// LocationConfirm: requestSeqNum, callSignalAddress, rasAddress, ... (optional:
/// nonStandardData).
fn lcf(r: &mut PerReader<'_>, w: &mut Walk) -> PerResult<Msg> {
    r.preamble(true, 1)?;
    r.constrained(65535)?;
    let a = h225_address(r)?;
    w.push(Msg::Lcf, Field::CallSignalAddress, a);
    let a = h225_address(r)?;
    w.push(Msg::Lcf, Field::RasAddress, a);
    Ok(Msg::Lcf)
}
