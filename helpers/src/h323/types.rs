//! The ASN.1 types the H.323 walkers skip, as [`Ty`] descriptions written from the modules
//! H323-MESSAGES (H.225.0 version 7), H235-SECURITY-MESSAGES (H.235) and
//! MULTIMEDIA-SYSTEM-CONTROL (H.245): for each type, its root components and alternatives
//! with their constraints, in order. Extension additions are open types skipped by length,
//! so they need no description. Names follow the ASN.1 (in SCREAMING case; the few types
//! of the same name in H.225.0, H.235 and H.245 carry a suffix).

use super::per::{f, o, Alts, Field, Seq, Size, Ty};

// Leaves.

/// NULL.
pub static NULL: Ty = Ty::Null;
/// BOOLEAN.
pub static BOOL: Ty = Ty::Bool;
/// OBJECT IDENTIFIER.
pub static OID: Ty = Ty::Oid;
/// OCTET STRING.
pub static OCTETS: Ty = Ty::Octets(Size::ANY);
/// BIT STRING.
pub static BITS: Ty = Ty::Bits(Size::ANY);
/// An open type.
pub static OPEN: Ty = Ty::Open;
/// INTEGER (no bounds).
pub static INTEGER: Ty = Ty::Unbounded;
/// INTEGER (0..255).
pub static INT_0_255: Ty = int(0, 255);
/// INTEGER (1..256).
pub static INT_1_256: Ty = int(1, 256);
/// INTEGER (0..65535).
pub static INT_0_65535: Ty = int(0, 65535);
/// INTEGER (1..65535) (RequestSeqNum, LogicalChannelNumber).
pub static INT_1_65535: Ty = int(1, 65535);
/// INTEGER (0..4294967295) (BandWidth).
pub static INT_0_4G: Ty = int(0, 4_294_967_295);
/// INTEGER (1..4294967295) (TimeStamp).
pub static INT_1_4G: Ty = int(1, 4_294_967_295);
/// OCTET STRING (SIZE (2)).
pub static OCTETS_2: Ty = Ty::Octets(Size::fixed(2));
/// OCTET STRING (SIZE (4)).
pub static OCTETS_4: Ty = Ty::Octets(Size::fixed(4));
/// OCTET STRING (SIZE (6)).
pub static OCTETS_6: Ty = Ty::Octets(Size::fixed(6));
/// OCTET STRING (SIZE (16)) (GloballyUniqueID, ConferenceIdentifier, netBios).
pub static OCTETS_16: Ty = Ty::Octets(Size::fixed(16));
/// OCTET STRING (SIZE (1..20)) (nsap).
pub static OCTETS_1_20: Ty = Ty::Octets(Size::range(1, 20));
/// BMPString (SIZE (1..128)) (GatekeeperIdentifier, EndpointIdentifier, Password, Identifier).
pub static BMP_1_128: Ty = Ty::Chars(Size::range(1, 128), 16);

const fn int(lb: i64, ub: i64) -> Ty {
    Ty::Int { lb, ub, ext: false }
}

/// A CHOICE whose alternatives are all NULL (the same as [`choice`], for the reader).
const fn nulls(ext: bool, alts: &'static [(&'static str, &'static Ty)]) -> Ty {
    choice(ext, alts)
}

/// A SEQUENCE.
const fn seq(ext: bool, fields: &'static [Field]) -> Ty {
    Ty::Seq(Seq { ext, fields })
}

/// A CHOICE.
const fn choice(ext: bool, alts: &'static [(&'static str, &'static Ty)]) -> Ty {
    Ty::Choice(Alts { ext, alts })
}

/// SEQUENCE OF `t`.
const fn seq_of(t: &'static Ty) -> Ty {
    Ty::SeqOf(Size::ANY, t)
}

// H.225.0 (H323-MESSAGES).

/// H221NonStandard.
pub static H221_NON_STANDARD: Ty = seq(
    true,
    &[
        f("t35CountryCode", &INT_0_255),
        f("t35Extension", &INT_0_255),
        f("manufacturerCode", &INT_0_65535),
    ],
);

/// NonStandardIdentifier.
pub static NON_STANDARD_IDENTIFIER: Ty = choice(
    true,
    &[("object", &OID), ("h221NonStandard", &H221_NON_STANDARD)],
);

/// NonStandardParameter.
pub static NON_STANDARD_PARAMETER: Ty = seq(
    false,
    &[
        f("nonStandardIdentifier", &NON_STANDARD_IDENTIFIER),
        f("data", &OCTETS),
    ],
);

/// AliasAddress.
pub static ALIAS_ADDRESS: Ty = choice(
    true,
    &[
        // IA5String (SIZE (1..128)) (FROM ("0123456789#*,")): 13 characters, 4 bits each.
        ("dialledDigits", &Ty::Chars(Size::range(1, 128), 4)),
        ("h323-ID", &Ty::Chars(Size::range(1, 256), 16)),
    ],
);

/// SEQUENCE OF AliasAddress.
pub static ALIASES: Ty = seq_of(&ALIAS_ADDRESS);

/// TransportAddress (H.225.0).
pub static TRANSPORT_ADDRESS: Ty = choice(
    true,
    &[
        (
            "ipAddress",
            &seq(false, &[f("ip", &OCTETS_4), f("port", &INT_0_65535)]),
        ),
        (
            "ipSourceRoute",
            &seq(
                true,
                &[
                    f("ip", &OCTETS_4),
                    f("port", &INT_0_65535),
                    f("route", &seq_of(&OCTETS_4)),
                    f(
                        "routing",
                        &nulls(true, &[("strict", &NULL), ("loose", &NULL)]),
                    ),
                ],
            ),
        ),
        (
            "ipxAddress",
            &seq(
                false,
                &[
                    f("node", &OCTETS_6),
                    f("netnum", &OCTETS_4),
                    f("port", &OCTETS_2),
                ],
            ),
        ),
        (
            "ip6Address",
            &seq(true, &[f("ip", &OCTETS_16), f("port", &INT_0_65535)]),
        ),
        ("netBios", &OCTETS_16),
        ("nsap", &OCTETS_1_20),
        ("nonStandardAddress", &NON_STANDARD_PARAMETER),
    ],
);

/// A SEQUENCE { nonStandardData NonStandardParameter OPTIONAL, ... }: GatekeeperInfo,
/// TerminalInfo, McuInfo and the H310Caps ... T120OnlyCaps of SupportedProtocols, whose
/// other components are all extension additions.
pub static NON_STANDARD_ONLY: Ty = seq(true, &[o("nonStandardData", &NON_STANDARD_PARAMETER)]);

/// SupportedProtocols.
pub static SUPPORTED_PROTOCOLS: Ty = choice(
    true,
    &[
        ("nonStandardData", &NON_STANDARD_PARAMETER),
        ("h310", &NON_STANDARD_ONLY),
        ("h320", &NON_STANDARD_ONLY),
        ("h321", &NON_STANDARD_ONLY),
        ("h322", &NON_STANDARD_ONLY),
        ("h323", &NON_STANDARD_ONLY),
        ("h324", &NON_STANDARD_ONLY),
        ("voice", &NON_STANDARD_ONLY),
        ("t120-only", &NON_STANDARD_ONLY),
    ],
);

/// VendorIdentifier.
pub static VENDOR_IDENTIFIER: Ty = seq(
    true,
    &[
        f("vendor", &H221_NON_STANDARD),
        o("productId", &Ty::Octets(Size::range(1, 256))),
        o("versionId", &Ty::Octets(Size::range(1, 256))),
    ],
);

/// GatewayInfo.
pub static GATEWAY_INFO: Ty = seq(
    true,
    &[
        o("protocol", &seq_of(&SUPPORTED_PROTOCOLS)),
        o("nonStandardData", &NON_STANDARD_PARAMETER),
    ],
);

/// EndpointType.
pub static ENDPOINT_TYPE: Ty = seq(
    true,
    &[
        o("nonStandardData", &NON_STANDARD_PARAMETER),
        o("vendor", &VENDOR_IDENTIFIER),
        o("gatekeeper", &NON_STANDARD_ONLY),
        o("gateway", &GATEWAY_INFO),
        o("mcu", &NON_STANDARD_ONLY),
        o("terminal", &NON_STANDARD_ONLY),
        f("mc", &BOOL),
        f("undefinedNode", &BOOL),
    ],
);

/// QseriesOptions.
pub static QSERIES_OPTIONS: Ty = seq(
    true,
    &[
        f("q932Full", &BOOL),
        f("q951Full", &BOOL),
        f("q952Full", &BOOL),
        f("q953Full", &BOOL),
        f("q955Full", &BOOL),
        f("q956Full", &BOOL),
        f("q957Full", &BOOL),
        f(
            "q954Info",
            &seq(
                true,
                &[f("conferenceCalling", &BOOL), f("threePartyService", &BOOL)],
            ),
        ),
    ],
);

/// CallType.
pub static CALL_TYPE: Ty = nulls(
    true,
    &[
        ("pointToPoint", &NULL),
        ("oneToN", &NULL),
        ("nToOne", &NULL),
        ("nToN", &NULL),
    ],
);

/// CallModel.
pub static CALL_MODEL: Ty = nulls(true, &[("direct", &NULL), ("gatekeeperRouted", &NULL)]);

/// Setup-UUIE.conferenceGoal.
pub static CONFERENCE_GOAL: Ty = nulls(
    true,
    &[("create", &NULL), ("join", &NULL), ("invite", &NULL)],
);

/// ReleaseCompleteReason (12 root alternatives, all NULL).
pub static RELEASE_COMPLETE_REASON: Ty = nulls(
    true,
    &[
        ("noBandwidth", &NULL),
        ("gatekeeperResources", &NULL),
        ("unreachableDestination", &NULL),
        ("destinationRejection", &NULL),
        ("invalidRevision", &NULL),
        ("noPermission", &NULL),
        ("unreachableGatekeeper", &NULL),
        ("gatewayResources", &NULL),
        ("badFormatAddress", &NULL),
        ("adaptiveBusy", &NULL),
        ("inConf", &NULL),
        ("undefinedReason", &NULL),
    ],
);

/// FacilityReason.
pub static FACILITY_REASON: Ty = nulls(
    true,
    &[
        ("routeCallToGatekeeper", &NULL),
        ("callForwarded", &NULL),
        ("routeCallToMC", &NULL),
        ("undefinedReason", &NULL),
    ],
);

/// CallIdentifier.
pub static CALL_IDENTIFIER: Ty = seq(true, &[f("guid", &OCTETS_16)]);

/// SecurityServiceMode.
pub static SECURITY_SERVICE_MODE: Ty = choice(
    true,
    &[
        ("nonStandard", &NON_STANDARD_PARAMETER),
        ("none", &NULL),
        ("default", &NULL),
    ],
);

/// SecurityCapabilities.
pub static SECURITY_CAPABILITIES: Ty = seq(
    true,
    &[
        o("nonStandard", &NON_STANDARD_PARAMETER),
        f("encryption", &SECURITY_SERVICE_MODE),
        f("authenticaton", &SECURITY_SERVICE_MODE),
        f("integrity", &SECURITY_SERVICE_MODE),
    ],
);

/// H245Security.
pub static H245_SECURITY: Ty = choice(
    true,
    &[
        ("nonStandard", &NON_STANDARD_PARAMETER),
        ("noSecurity", &NULL),
        ("tls", &SECURITY_CAPABILITIES),
        ("ipsec", &SECURITY_CAPABILITIES),
    ],
);

// H.235 (H235-SECURITY-MESSAGES), for the tokens before Progress-UUIE's fastStart.

/// NonStandardParameter (H.235).
pub static NON_STANDARD_PARAMETER_H235: Ty = seq(
    false,
    &[f("nonStandardIdentifier", &OID), f("data", &OCTETS)],
);

/// DHset.
pub static DH_SET: Ty = seq(
    true,
    &[
        f("halfkey", &Ty::Bits(Size::range(0, 2048))),
        f("modSize", &Ty::Bits(Size::range(0, 2048))),
        f("generator", &Ty::Bits(Size::range(0, 2048))),
    ],
);

/// TypedCertificate.
pub static TYPED_CERTIFICATE: Ty = seq(true, &[f("type", &OID), f("certificate", &OCTETS)]);

/// ClearToken.
pub static CLEAR_TOKEN: Ty = seq(
    true,
    &[
        f("tokenOID", &OID),
        o("timeStamp", &INT_1_4G),
        o("password", &BMP_1_128),
        o("dhkey", &DH_SET),
        o("challenge", &Ty::Octets(Size::range(8, 128))),
        o("random", &INTEGER),
        o("certificate", &TYPED_CERTIFICATE),
        o("generalID", &BMP_1_128),
        o("nonStandard", &NON_STANDARD_PARAMETER_H235),
    ],
);

/// Params.
pub static PARAMS: Ty = seq(
    true,
    &[o("ranInt", &INTEGER), o("iv8", &Ty::Octets(Size::fixed(8)))],
);

/// HASHED { ... }.
pub static HASHED: Ty = seq(
    false,
    &[
        f("algorithmOID", &OID),
        f("paramS", &PARAMS),
        f("hash", &BITS),
    ],
);

/// ENCRYPTED { ... }.
pub static ENCRYPTED: Ty = seq(
    false,
    &[
        f("algorithmOID", &OID),
        f("paramS", &PARAMS),
        f("encryptedData", &OCTETS),
    ],
);

/// SIGNED { ... } (what is signed is an open type, `TYPE-IDENTIFIER.&Type`).
pub static SIGNED: Ty = seq(
    false,
    &[
        f("toBeSigned", &OPEN),
        f("algorithmOID", &OID),
        f("paramS", &PARAMS),
        f("signature", &BITS),
    ],
);

/// CryptoToken.
pub static CRYPTO_TOKEN: Ty = choice(
    true,
    &[
        (
            "cryptoEncryptedToken",
            &seq(false, &[f("tokenOID", &OID), f("token", &ENCRYPTED)]),
        ),
        (
            "cryptoSignedToken",
            &seq(false, &[f("tokenOID", &OID), f("token", &SIGNED)]),
        ),
        (
            "cryptoHashedToken",
            &seq(
                false,
                &[
                    f("tokenOID", &OID),
                    f("hashedVals", &CLEAR_TOKEN),
                    f("token", &HASHED),
                ],
            ),
        ),
        ("cryptoPwdEncr", &ENCRYPTED),
    ],
);

/// SEQUENCE OF ClearToken.
pub static CLEAR_TOKENS: Ty = seq_of(&CLEAR_TOKEN);

/// CryptoH323Token (H.225.0).
pub static CRYPTO_H323_TOKEN: Ty = choice(
    true,
    &[
        (
            "cryptoEPPwdHash",
            &seq(
                false,
                &[
                    f("alias", &ALIAS_ADDRESS),
                    f("timeStamp", &INT_1_4G),
                    f("token", &HASHED),
                ],
            ),
        ),
        (
            "cryptoGKPwdHash",
            &seq(
                false,
                &[
                    f("gatekeeperId", &BMP_1_128),
                    f("timeStamp", &INT_1_4G),
                    f("token", &HASHED),
                ],
            ),
        ),
        ("cryptoEPPwdEncr", &ENCRYPTED),
        ("cryptoGKPwdEncr", &ENCRYPTED),
        ("cryptoEPCert", &SIGNED),
        ("cryptoGKCert", &SIGNED),
        ("cryptoFastStart", &SIGNED),
        ("nestedcryptoToken", &CRYPTO_TOKEN),
    ],
);

/// SEQUENCE OF CryptoH323Token.
pub static CRYPTO_H323_TOKENS: Ty = seq_of(&CRYPTO_H323_TOKEN);

/// SEQUENCE OF CallReferenceValue (Setup-UUIE.destExtraCRV).
pub static CALL_REFERENCE_VALUES: Ty = seq_of(&INT_0_65535);

// H.245 (MULTIMEDIA-SYSTEM-CONTROL).

/// NonStandardParameter (H.245).
pub static NON_STANDARD_PARAMETER_H245: Ty = seq(
    false,
    &[
        f(
            "nonStandardIdentifier",
            &choice(
                false,
                &[
                    ("object", &OID),
                    (
                        "h221NonStandard",
                        &seq(
                            false,
                            &[
                                f("t35CountryCode", &INT_0_255),
                                f("t35Extension", &INT_0_255),
                                f("manufacturerCode", &INT_0_65535),
                            ],
                        ),
                    ),
                ],
            ),
        ),
        f("data", &OCTETS),
    ],
);

/// SEQUENCE OF NonStandardParameter (H.245).
pub static NON_STANDARDS_H245: Ty = seq_of(&NON_STANDARD_PARAMETER_H245);

/// H261VideoCapability.
pub static H261_VIDEO_CAPABILITY: Ty = seq(
    true,
    &[
        o("qcifMPI", &int(1, 4)),
        o("cifMPI", &int(1, 4)),
        f("temporalSpatialTradeOffCapability", &BOOL),
        f("maxBitRate", &int(1, 19200)),
        f("stillImageTransmission", &BOOL),
    ],
);

/// H262VideoCapability.
pub static H262_VIDEO_CAPABILITY: Ty = seq(
    true,
    &[
        f("profileAndLevel-SPatML", &BOOL),
        f("profileAndLevel-MPatLL", &BOOL),
        f("profileAndLevel-MPatML", &BOOL),
        f("profileAndLevel-MPatH-14", &BOOL),
        f("profileAndLevel-MPatHL", &BOOL),
        f("profileAndLevel-SNRatLL", &BOOL),
        f("profileAndLevel-SNRatML", &BOOL),
        f("profileAndLevel-SpatialatH-14", &BOOL),
        f("profileAndLevel-HPatML", &BOOL),
        f("profileAndLevel-HPatH-14", &BOOL),
        f("profileAndLevel-HPatHL", &BOOL),
        o("videoBitRate", &int(0, 1_073_741_823)),
        o("vbvBufferSize", &int(0, 262_143)),
        o("samplesPerLine", &int(0, 16383)),
        o("linesPerFrame", &int(0, 16383)),
        o("framesPerSecond", &int(0, 15)),
        o("luminanceSampleRate", &INT_0_4G),
    ],
);

/// H263VideoCapability.
pub static H263_VIDEO_CAPABILITY: Ty = seq(
    true,
    &[
        o("sqcifMPI", &int(1, 32)),
        o("qcifMPI", &int(1, 32)),
        o("cifMPI", &int(1, 32)),
        o("cif4MPI", &int(1, 32)),
        o("cif16MPI", &int(1, 32)),
        f("maxBitRate", &int(1, 192_400)),
        f("unrestrictedVector", &BOOL),
        f("arithmeticCoding", &BOOL),
        f("advancedPrediction", &BOOL),
        f("pbFrames", &BOOL),
        f("temporalSpatialTradeOffCapability", &BOOL),
        o("hrd-B", &int(0, 524_287)),
        o("bppMaxKb", &INT_0_65535),
    ],
);

/// IS11172VideoCapability.
pub static IS11172_VIDEO_CAPABILITY: Ty = seq(
    true,
    &[
        f("constrainedBitstream", &BOOL),
        o("videoBitRate", &int(0, 1_073_741_823)),
        o("vbvBufferSize", &int(0, 262_143)),
        o("samplesPerLine", &int(0, 16383)),
        o("linesPerFrame", &int(0, 16383)),
        o("pictureRate", &int(0, 15)),
        o("luminanceSampleRate", &INT_0_4G),
    ],
);

/// VideoCapability.
pub static VIDEO_CAPABILITY: Ty = choice(
    true,
    &[
        ("nonStandard", &NON_STANDARD_PARAMETER_H245),
        ("h261VideoCapability", &H261_VIDEO_CAPABILITY),
        ("h262VideoCapability", &H262_VIDEO_CAPABILITY),
        ("h263VideoCapability", &H263_VIDEO_CAPABILITY),
        ("is11172VideoCapability", &IS11172_VIDEO_CAPABILITY),
    ],
);

/// IS11172AudioCapability.
pub static IS11172_AUDIO_CAPABILITY: Ty = seq(
    true,
    &[
        f("audioLayer1", &BOOL),
        f("audioLayer2", &BOOL),
        f("audioLayer3", &BOOL),
        f("audioSampling32k", &BOOL),
        f("audioSampling44k1", &BOOL),
        f("audioSampling48k", &BOOL),
        f("singleChannel", &BOOL),
        f("twoChannels", &BOOL),
        f("bitRate", &int(1, 448)),
    ],
);

/// IS13818AudioCapability.
pub static IS13818_AUDIO_CAPABILITY: Ty = seq(
    true,
    &[
        f("audioLayer1", &BOOL),
        f("audioLayer2", &BOOL),
        f("audioLayer3", &BOOL),
        f("audioSampling16k", &BOOL),
        f("audioSampling22k05", &BOOL),
        f("audioSampling24k", &BOOL),
        f("audioSampling32k", &BOOL),
        f("audioSampling44k1", &BOOL),
        f("audioSampling48k", &BOOL),
        f("singleChannel", &BOOL),
        f("twoChannels", &BOOL),
        f("threeChannels2-1", &BOOL),
        f("threeChannels3-0", &BOOL),
        f("fourChannels2-0-2-0", &BOOL),
        f("fourChannels2-2", &BOOL),
        f("fourChannels3-1", &BOOL),
        f("fiveChannels3-0-2-0", &BOOL),
        f("fiveChannels3-2", &BOOL),
        f("lowFrequencyEnhancement", &BOOL),
        f("multilingual", &BOOL),
        f("bitRate", &int(1, 1130)),
    ],
);

/// AudioCapability.
pub static AUDIO_CAPABILITY: Ty = choice(
    true,
    &[
        ("nonStandard", &NON_STANDARD_PARAMETER_H245),
        ("g711Alaw64k", &INT_1_256),
        ("g711Alaw56k", &INT_1_256),
        ("g711Ulaw64k", &INT_1_256),
        ("g711Ulaw56k", &INT_1_256),
        ("g722-64k", &INT_1_256),
        ("g722-56k", &INT_1_256),
        ("g722-48k", &INT_1_256),
        (
            "g7231",
            &seq(
                false,
                &[
                    f("maxAl-sduAudioFrames", &INT_1_256),
                    f("silenceSuppression", &BOOL),
                ],
            ),
        ),
        ("g728", &INT_1_256),
        ("g729", &INT_1_256),
        ("g729AnnexA", &INT_1_256),
        ("is11172AudioCapability", &IS11172_AUDIO_CAPABILITY),
        ("is13818AudioCapability", &IS13818_AUDIO_CAPABILITY),
    ],
);

/// DataProtocolCapability.
pub static DATA_PROTOCOL_CAPABILITY: Ty = choice(
    true,
    &[
        ("nonStandard", &NON_STANDARD_PARAMETER_H245),
        ("v14buffered", &NULL),
        ("v42lapm", &NULL),
        ("hdlcFrameTunnelling", &NULL),
        ("h310SeparateVCStack", &NULL),
        ("h310SingleVCStack", &NULL),
        ("transparent", &NULL),
    ],
);

/// T84Profile.
pub static T84_PROFILE: Ty = choice(
    false,
    &[
        ("t84Unrestricted", &NULL),
        (
            "t84Restricted",
            &seq(
                true,
                &[
                    f("qcif", &BOOL),
                    f("cif", &BOOL),
                    f("ccir601Seq", &BOOL),
                    f("ccir601Prog", &BOOL),
                    f("hdtvSeq", &BOOL),
                    f("hdtvProg", &BOOL),
                    f("g3FacsMH200x100", &BOOL),
                    f("g3FacsMH200x200", &BOOL),
                    f("g4FacsMMR200x100", &BOOL),
                    f("g4FacsMMR200x200", &BOOL),
                    f("jbig200x200Seq", &BOOL),
                    f("jbig200x200Prog", &BOOL),
                    f("jbig300x300Seq", &BOOL),
                    f("jbig300x300Prog", &BOOL),
                    f("digPhotoLow", &BOOL),
                    f("digPhotoMedSeq", &BOOL),
                    f("digPhotoMedProg", &BOOL),
                    f("digPhotoHighSeq", &BOOL),
                    f("digPhotoHighProg", &BOOL),
                ],
            ),
        ),
    ],
);

/// DataApplicationCapability.
pub static DATA_APPLICATION_CAPABILITY: Ty = seq(
    true,
    &[
        f(
            "application",
            &choice(
                true,
                &[
                    ("nonStandard", &NON_STANDARD_PARAMETER_H245),
                    ("t120", &DATA_PROTOCOL_CAPABILITY),
                    ("dsm-cc", &DATA_PROTOCOL_CAPABILITY),
                    ("userData", &DATA_PROTOCOL_CAPABILITY),
                    (
                        "t84",
                        &seq(
                            false,
                            &[
                                f("t84Protocol", &DATA_PROTOCOL_CAPABILITY),
                                f("t84Profile", &T84_PROFILE),
                            ],
                        ),
                    ),
                    ("t434", &DATA_PROTOCOL_CAPABILITY),
                    ("h224", &DATA_PROTOCOL_CAPABILITY),
                    (
                        "nlpid",
                        &seq(
                            false,
                            &[
                                f("nlpidProtocol", &DATA_PROTOCOL_CAPABILITY),
                                f("nlpidData", &OCTETS),
                            ],
                        ),
                    ),
                    ("dsvdControl", &NULL),
                    ("h222DataPartitioning", &DATA_PROTOCOL_CAPABILITY),
                ],
            ),
        ),
        f("maxBitRate", &INT_0_4G),
    ],
);

/// EncryptionMode.
pub static ENCRYPTION_MODE: Ty = choice(
    true,
    &[
        ("nonStandard", &NON_STANDARD_PARAMETER_H245),
        ("h233Encryption", &NULL),
    ],
);

/// DataType.
pub static DATA_TYPE: Ty = choice(
    true,
    &[
        ("nonStandard", &NON_STANDARD_PARAMETER_H245),
        ("nullData", &NULL),
        ("videoData", &VIDEO_CAPABILITY),
        ("audioData", &AUDIO_CAPABILITY),
        ("data", &DATA_APPLICATION_CAPABILITY),
        ("encryptionData", &ENCRYPTION_MODE),
    ],
);

/// H222LogicalChannelParameters.
pub static H222_LOGICAL_CHANNEL_PARAMETERS: Ty = seq(
    true,
    &[
        f("resourceID", &INT_0_65535),
        f("subChannelID", &int(0, 8191)),
        o("pcr-pid", &int(0, 8191)),
        o("programDescriptors", &OCTETS),
        o("streamDescriptors", &OCTETS),
    ],
);

/// H223LogicalChannelParameters.
pub static H223_LOGICAL_CHANNEL_PARAMETERS: Ty = seq(
    true,
    &[
        f(
            "adaptationLayerType",
            &choice(
                true,
                &[
                    ("nonStandard", &NON_STANDARD_PARAMETER_H245),
                    ("al1Framed", &NULL),
                    ("al1NotFramed", &NULL),
                    ("al2WithoutSequenceNumbers", &NULL),
                    ("al2WithSequenceNumbers", &NULL),
                    (
                        "al3",
                        &seq(
                            false,
                            &[
                                f("controlFieldOctets", &int(0, 2)),
                                f("sendBufferSize", &int(0, 16_777_215)),
                            ],
                        ),
                    ),
                ],
            ),
        ),
        f("segmentableFlag", &BOOL),
    ],
);

/// V76LogicalChannelParameters.
pub static V76_LOGICAL_CHANNEL_PARAMETERS: Ty = seq(
    true,
    &[
        f(
            "hdlcParameters",
            &seq(
                true,
                &[
                    f(
                        "crcLength",
                        &nulls(
                            true,
                            &[("crc8bit", &NULL), ("crc16bit", &NULL), ("crc32bit", &NULL)],
                        ),
                    ),
                    f("n401", &int(1, 4095)),
                    f("loopbackTestProcedure", &BOOL),
                ],
            ),
        ),
        f(
            "suspendResume",
            &nulls(
                true,
                &[
                    ("noSuspendResume", &NULL),
                    ("suspendResumewAddress", &NULL),
                    ("suspendResumewoAddress", &NULL),
                ],
            ),
        ),
        f("uIH", &BOOL),
        f(
            "mode",
            &choice(
                true,
                &[
                    (
                        "eRM",
                        &seq(
                            true,
                            &[
                                f("windowSize", &int(1, 127)),
                                f(
                                    "recovery",
                                    &nulls(
                                        true,
                                        &[("rej", &NULL), ("sREJ", &NULL), ("mSREJ", &NULL)],
                                    ),
                                ),
                            ],
                        ),
                    ),
                    ("uNERM", &NULL),
                ],
            ),
        ),
        f(
            "v75Parameters",
            &seq(true, &[f("audioHeaderPresent", &BOOL)]),
        ),
    ],
);

/// UnicastAddress.
pub static UNICAST_ADDRESS: Ty = choice(
    true,
    &[
        (
            "iPAddress",
            &seq(
                true,
                &[f("network", &OCTETS_4), f("tsapIdentifier", &INT_0_65535)],
            ),
        ),
        (
            "iPXAddress",
            &seq(
                true,
                &[
                    f("node", &OCTETS_6),
                    f("netnum", &OCTETS_4),
                    f("tsapIdentifier", &OCTETS_2),
                ],
            ),
        ),
        (
            "iP6Address",
            &seq(
                true,
                &[f("network", &OCTETS_16), f("tsapIdentifier", &INT_0_65535)],
            ),
        ),
        ("netBios", &OCTETS_16),
        (
            "iPSourceRouteAddress",
            &seq(
                true,
                &[
                    f(
                        "routing",
                        &nulls(false, &[("strict", &NULL), ("loose", &NULL)]),
                    ),
                    f("network", &OCTETS_4),
                    f("tsapIdentifier", &INT_0_65535),
                    f("route", &seq_of(&OCTETS_4)),
                ],
            ),
        ),
    ],
);

/// MulticastAddress.
pub static MULTICAST_ADDRESS: Ty = choice(
    true,
    &[
        (
            "iPAddress",
            &seq(
                true,
                &[f("network", &OCTETS_4), f("tsapIdentifier", &INT_0_65535)],
            ),
        ),
        (
            "iP6Address",
            &seq(
                true,
                &[f("network", &OCTETS_16), f("tsapIdentifier", &INT_0_65535)],
            ),
        ),
    ],
);

/// TransportAddress (H.245).
pub static TRANSPORT_ADDRESS_H245: Ty = choice(
    true,
    &[
        ("unicastAddress", &UNICAST_ADDRESS),
        ("multicastAddress", &MULTICAST_ADDRESS),
    ],
);

/// Q2931Address.
pub static Q2931_ADDRESS: Ty = seq(
    true,
    &[
        f(
            "address",
            &choice(
                true,
                &[
                    // NumericString (SIZE (1..16)): 11 characters, 4 bits each.
                    ("internationalNumber", &Ty::Chars(Size::range(1, 16), 4)),
                    ("nsapAddress", &OCTETS_1_20),
                ],
            ),
        ),
        o("subaddress", &OCTETS_1_20),
    ],
);

/// NetworkAccessParameters.distribution.
pub static DISTRIBUTION: Ty = nulls(true, &[("unicast", &NULL), ("multicast", &NULL)]);

/// NetworkAccessParameters.networkAddress.e164Address: IA5String (SIZE (1..128))
/// (FROM ("0123456789#*,")).
pub static E164_ADDRESS: Ty = Ty::Chars(Size::range(1, 128), 4);
