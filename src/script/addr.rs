//! Remote-address filters as playbooks take them (`10.0.0.7:443`,
//! `[2001:db8::1]:443`, `10.0.0.7`, `:443`), checked strictly so a typo is
//! a usage error rather than a filter that matches nothing, and matched
//! against the addresses `fds()` shows.

use std::net::{IpAddr, SocketAddr};

/// A parsed filter: a host, a port, or both.
#[derive(Debug, PartialEq, Eq)]
pub struct Filter {
    pub host: Option<IpAddr>,
    pub port: Option<u16>,
}

/// Parse `want`; the error says what is accepted.
pub fn parse(want: &str) -> Result<Filter, String> {
    let bad = |why: &str| {
        Err(format!(
            "{want:?} is not a remote address: {why} (give host:port, a host, or :port; e.g. 10.0.0.7:443, [2001:db8::1]:443, :443)"
        ))
    };
    let port = |p: &str| match p.parse::<u16>() {
        Ok(0) | Err(_) => None,
        Ok(n) => Some(n),
    };
    if let Some(p) = want.strip_prefix(':').filter(|p| !p.contains(':')) {
        return match port(p) {
            Some(n) => Ok(Filter {
                host: None,
                port: Some(n),
            }),
            None => bad("the port must be 1 to 65535"),
        };
    }
    if let Ok(sa) = want.parse::<SocketAddr>() {
        if sa.port() == 0 {
            return bad("the port must be 1 to 65535");
        }
        return Ok(Filter {
            host: Some(sa.ip().to_canonical()),
            port: Some(sa.port()),
        });
    }
    let bare = want.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(Filter {
            host: Some(ip.to_canonical()),
            port: None,
        });
    }
    match want.rsplit_once(':') {
        Some((h, p)) if h.parse::<IpAddr>().is_ok() || port(p).is_none() => {
            bad("the port must be 1 to 65535")
        }
        _ => bad("hosts are numeric addresses, as fds() shows them"),
    }
}

impl Filter {
    /// Does `addr` (an address as fds() shows it) match?
    pub fn matches(&self, addr: &str) -> bool {
        let Ok(sa) = addr.parse::<SocketAddr>() else {
            return false;
        };
        self.host.is_none_or(|h| h == sa.ip().to_canonical())
            && self.port.is_none_or(|p| p == sa.port())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_strictly() {
        for ok in [
            "10.0.0.7:443",
            "[2001:db8::1]:443",
            "10.0.0.7",
            "[::1]",
            "::1",
            ":443",
        ] {
            assert!(parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "bogus",
            ":0",
            ":99999",
            "10.0.0.7:x",
            "localhost:80",
            "",
            ":",
            "10.0.0:80",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn filters_match_mapped_and_bracketed_addresses() {
        let f = parse("127.0.0.1:7777").unwrap();
        assert!(f.matches("127.0.0.1:7777"));
        assert!(f.matches("[::ffff:127.0.0.1]:7777"));
        assert!(!f.matches("127.0.0.1:7778"));
        assert!(parse(":7777").unwrap().matches("[::1]:7777"));
        assert!(parse("[::1]").unwrap().matches("[::1]:1"));
        assert!(!parse(":1").unwrap().matches("/tmp/sock"));
    }
}
