//! Splitting one line into tokens the way iptables-restore does: whitespace separates, `"` and
//! `'` quote (so a comment may hold spaces), and a backslash takes the next character literally.

/// One token with the 1-based character column where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Tok {
    pub(crate) text: String,
    pub(crate) col: usize,
    /// True when any part was quoted or escaped, so `"!"` or `"-x"` are values, not syntax.
    pub(crate) quoted: bool,
}

/// Tokenizes `line`; on error returns the column and a message.
pub(crate) fn tokenize(line: &str) -> Result<Vec<Tok>, (usize, String)> {
    let mut toks = Vec::new();
    let mut cur: Option<Tok> = None;
    let mut quote: Option<(char, usize)> = None;
    let mut chars = line.chars().enumerate().peekable();
    while let Some((i, c)) = chars.next() {
        let col = i + 1;
        if quote.is_none() && (c == ' ' || c == '\t' || c == '\r') {
            if let Some(t) = cur.take() {
                toks.push(t);
            }
            continue;
        }
        let tok = cur.get_or_insert_with(|| Tok {
            text: String::new(),
            col,
            quoted: false,
        });
        match (c, quote) {
            ('\\', _) => match chars.next() {
                Some((_, next)) => {
                    tok.text.push(next);
                    tok.quoted = true;
                }
                None => return Err((col, "backslash at the end of the line".into())),
            },
            ('"' | '\'', None) => {
                quote = Some((c, col));
                tok.quoted = true;
            }
            (_, Some((q, _))) if c == q => quote = None,
            _ => tok.text.push(c),
        }
    }
    if let Some((q, col)) = quote {
        return Err((col, format!("unterminated quote {q}")));
    }
    if let Some(t) = cur.take() {
        toks.push(t);
    }
    Ok(toks)
}

/// Quotes a value for save output as iptables-save does: bare when it holds only letters, digits,
/// `_` and `-`, otherwise in `"` with `"`, `'` and `\` escaped, so [`tokenize`] reads it back.
pub(crate) fn quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if plain {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\'' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Always in `"`, with `"` and `\` escaped: how libxt_string prints `--string` (a `'` inside
/// double quotes needs no escape for [`tokenize`]).
pub(crate) fn quote_always(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(line: &str) -> Vec<(String, usize)> {
        tokenize(line)
            .unwrap()
            .into_iter()
            .map(|t| (t.text, t.col))
            .collect()
    }

    #[test]
    fn splits_and_columns() {
        assert_eq!(
            texts("-A INPUT  -s 1.2.3.4\t-j DROP"),
            vec![
                ("-A".into(), 1),
                ("INPUT".into(), 4),
                ("-s".into(), 11),
                ("1.2.3.4".into(), 14),
                ("-j".into(), 22),
                ("DROP".into(), 25)
            ]
        );
    }

    #[test]
    fn quotes_and_escapes() {
        assert_eq!(
            texts(r#"--comment "a b \"c\" \\d" x"#),
            vec![
                ("--comment".into(), 1),
                (r#"a b "c" \d"#.into(), 11),
                ("x".into(), 27)
            ]
        );
        assert_eq!(
            texts("'it''s' \"\""),
            vec![("its".into(), 1), ("".into(), 9)]
        );
        assert!(tokenize("\"!\"").unwrap()[0].quoted);
    }

    #[test]
    fn errors() {
        assert_eq!(tokenize("a \"bc").unwrap_err().0, 3);
        assert_eq!(tokenize("ab\\").unwrap_err().0, 3);
    }

    #[test]
    fn quote_round_trips() {
        for s in [
            "plain",
            "with space",
            "q\"uote",
            "back\\slash",
            "",
            "-dash",
            "!",
            "ü",
        ] {
            let q = quote(s);
            let t = tokenize(&q).unwrap();
            assert_eq!(t.len(), 1, "{q}");
            assert_eq!(t[0].text, s);
        }
        assert_eq!(quote("ssh"), "ssh");
        assert_eq!(quote("allow ssh"), "\"allow ssh\"");
    }
}
