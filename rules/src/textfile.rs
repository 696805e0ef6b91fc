//! Reading the configuration and rule files: bounded in size (a path like `/dev/zero` must
//! fail with a clear error, not fill memory), and checked as UTF-8 with the line and column of
//! the first bad byte.

use std::fmt;
use std::io::{self, Read};
use std::path::Path;

/// Largest configuration or rule file read: far above real ones (100,000 rules in
/// iptables-save format are about 10 MiB).
pub const MAX_TEXT_FILE: u64 = 64 << 20;

/// Why a text file could not be read.
#[derive(Debug)]
pub enum TextError {
    /// The file could not be opened or read.
    Io(io::Error),
    /// The file is larger than the limit.
    TooLarge {
        /// The limit, in bytes.
        limit: u64,
    },
    /// A byte sequence is not UTF-8.
    NotUtf8 {
        /// 1-based line of the first bad byte.
        line: usize,
        /// 1-based column, in characters.
        column: usize,
        /// The first bad byte.
        byte: u8,
    },
}

impl fmt::Display for TextError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TextError::Io(e) => write!(f, "{e}"),
            TextError::TooLarge { limit } => {
                write!(f, "larger than {} MiB (is it the right file?)", limit >> 20)
            }
            TextError::NotUtf8 { byte, .. } => {
                write!(f, "invalid UTF-8 (byte 0x{byte:02x}): expected UTF-8 text")
            }
        }
    }
}

/// Reads a whole text file of at most `limit` bytes.
pub fn read(path: &Path, limit: u64) -> Result<String, TextError> {
    let file = std::fs::File::open(path).map_err(TextError::Io)?;
    // A regular file announces its size; devices and pipes are read up to the limit.
    if let Ok(m) = file.metadata() {
        if m.is_file() && m.len() > limit {
            return Err(TextError::TooLarge { limit });
        }
    }
    let mut buf = Vec::new();
    file.take(limit.saturating_add(1))
        .read_to_end(&mut buf)
        .map_err(TextError::Io)?;
    if buf.len() as u64 > limit {
        return Err(TextError::TooLarge { limit });
    }
    from_utf8(buf)
}

/// Converts bytes to text, or says where the first byte that is not UTF-8 is.
pub fn from_utf8(buf: Vec<u8>) -> Result<String, TextError> {
    String::from_utf8(buf).map_err(|e| {
        let valid = e.utf8_error().valid_up_to();
        let bytes = e.as_bytes();
        let good = std::str::from_utf8(&bytes[..valid]).unwrap_or_default();
        let line = good.matches('\n').count() + 1;
        let column = good.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        TextError::NotUtf8 {
            line,
            column,
            byte: bytes.get(valid).copied().unwrap_or(0),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_utf8_has_a_position() {
        let e = from_utf8(b"ab\ncd\xc3\xa9f\xff x\n".to_vec()).unwrap_err();
        assert!(
            matches!(
                e,
                TextError::NotUtf8 {
                    line: 2,
                    column: 5,
                    byte: 0xff
                }
            ),
            "{e:?}"
        );
        assert_eq!(from_utf8(b"ok\n".to_vec()).unwrap(), "ok\n");
    }

    #[test]
    fn devices_and_large_files_stop_at_the_limit() {
        let e = read(Path::new("/dev/zero"), 1 << 20).unwrap_err();
        assert!(
            matches!(e, TextError::TooLarge { limit } if limit == 1 << 20),
            "{e:?}"
        );
        let dir = std::env::temp_dir().join(format!("tf-textfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("big");
        std::fs::write(&p, vec![b'a'; 2048]).unwrap();
        assert!(matches!(read(&p, 1024), Err(TextError::TooLarge { .. })));
        assert_eq!(read(&p, 4096).unwrap().len(), 2048);
        assert!(
            matches!(read(&dir, 4096), Err(TextError::Io(_))),
            "a directory"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
