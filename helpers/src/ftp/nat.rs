//! How FTP announcements are written back under NAT (Linux splits this part off as
//! `nf_nat_ftp`): the text that replaces a [`Site`](crate::Site) the parser found.

use std::net::{IpAddr, Ipv4Addr};

/// `PORT h1,h2,h3,h4,p1,p2`: the site is the six numbers.
pub const SITE_PORT: u8 = 0;
/// `227 ... (h1,h2,h3,h4,p1,p2)`: the site is the six numbers (the text around stays).
pub const SITE_PASV: u8 = 1;
/// `EPRT |af|addr|port|`: the site runs from the first delimiter to the last.
pub const SITE_EPRT: u8 = 2;
/// `229 ... (|||port|)`: the site runs from the first delimiter to the last.
pub const SITE_EPSV: u8 = 3;

/// The bytes that announce `addr`:`port` in a site of kind `kind`.
///
/// PORT and 227 carry only IPv4; the parser never makes such a site on an IPv6 connection,
/// and given an IPv6 address anyway this writes its IPv4-mapped form, or `0,0,0,0` if it has
/// none. EPRT writes `|1|` or `|2|` after the address's family, IPv6 in RFC 5952 form; the
/// delimiter is always `|` (RFC 2428's recommendation), whatever the command used. An
/// unknown kind formats as PORT.
pub fn format(kind: u8, addr: IpAddr, port: u16) -> Vec<u8> {
    match kind {
        SITE_EPRT => match addr {
            IpAddr::V4(a) => format!("|1|{a}|{port}|"),
            IpAddr::V6(a) => format!("|2|{a}|{port}|"),
        }
        .into_bytes(),
        SITE_EPSV => format!("|||{port}|").into_bytes(),
        _ => {
            let v4 = match addr {
                IpAddr::V4(a) => a,
                IpAddr::V6(a) => a.to_ipv4_mapped().unwrap_or(Ipv4Addr::UNSPECIFIED),
            };
            let [a, b, c, d] = v4.octets();
            format!("{a},{b},{c},{d},{},{}", port >> 8, port & 0xff).into_bytes()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn each_kind() {
        assert_eq!(format(SITE_PORT, ip("192.0.2.1"), 1025), b"192,0,2,1,4,1");
        assert_eq!(
            format(SITE_PASV, ip("203.0.113.200"), 65535),
            b"203,0,113,200,255,255"
        );
        assert_eq!(
            format(SITE_EPRT, ip("192.0.2.1"), 6275),
            b"|1|192.0.2.1|6275|"
        );
        assert_eq!(format(SITE_EPSV, ip("2001:db8::1"), 6446), b"|||6446|");
    }

    #[test]
    fn ipv6_is_written_in_rfc5952_form() {
        // Leading zeros dropped, the longest zero run compressed, lower case.
        let a = ip("2001:0DB8:0000:0000:0001:0000:0000:0001");
        assert_eq!(format(SITE_EPRT, a, 21), b"|2|2001:db8::1:0:0:1|21|");
        assert_eq!(
            format(SITE_EPRT, ip("2001:db8:0:1:1:1:1:1"), 1),
            b"|2|2001:db8:0:1:1:1:1:1|1|"
        );
        // PORT cannot carry IPv6: the mapped form, else nothing that routes.
        assert_eq!(
            format(SITE_PORT, ip("::ffff:192.0.2.9"), 256),
            b"192,0,2,9,1,0"
        );
        assert_eq!(format(SITE_PORT, ip("2001:db8::1"), 256), b"0,0,0,0,1,0");
    }
}
