//! Where webhooks may go: `http(s)://` URLs whose host resolves only to public addresses,
//! unless `webhooks.allow_private_networks` is set. Checked when an endpoint is created, and
//! again when each attempt connects (the client resolves through [`GuardedResolver`] and
//! connects only to the addresses it let through), so a name that later resolves to a private
//! address (DNS rebinding) gets nowhere.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::Url;
use taskward_model::Invalid;

/// How long creating an endpoint waits for its host to resolve.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(3);

/// Why an address may not be a webhook target; `None` for a public address.
pub fn forbidden(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => {
            // An IPv4 address in IPv6 clothing is judged as the IPv4 address.
            if let Some(v4) = v6.to_ipv4_mapped() {
                return forbidden_v4(v4);
            }
            let s = v6.segments();
            if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                // NAT64 (64:ff9b::/96) reaches the IPv4 address in the last 32 bits.
                let [a, b] = [s[6].to_be_bytes(), s[7].to_be_bytes()];
                return forbidden_v4(Ipv4Addr::new(a[0], a[1], b[0], b[1]));
            }
            forbidden_v6(v6)
        }
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let o = ip.octets();
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_private() {
        Some("private")
    } else if ip.is_link_local() {
        // 169.254.0.0/16 holds the cloud metadata service (169.254.169.254).
        Some("link-local or metadata")
    } else if o[0] == 100 && (o[1] & 0xc0) == 64 {
        // 100.64.0.0/10, shared address space; holds Alibaba Cloud's metadata (100.100.100.200).
        Some("shared (carrier-grade NAT) or metadata")
    } else if o[0] == 0 || ip.is_broadcast() || ip.is_multicast() || o[0] >= 240 {
        Some("unspecified, broadcast, multicast or reserved")
    } else if o[0] == 192 && o[1] == 0 && o[2] == 0 {
        Some("IETF protocol assignment")
    } else if o[0] == 198 && (o[1] & 0xfe) == 18 {
        Some("benchmarking")
    } else {
        None
    }
}

fn forbidden_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let first = ip.segments()[0];
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_unspecified() || ip.is_multicast() {
        Some("unspecified or multicast")
    } else if first & 0xfe00 == 0xfc00 {
        // fc00::/7; holds AWS's IPv6 metadata address fd00:ec2::254.
        Some("unique-local")
    } else if first & 0xffc0 == 0xfe80 {
        Some("link-local")
    } else {
        None
    }
}

/// Checks an endpoint URL's shape: `http` or `https`, a host, no credentials, no fragment.
pub fn parse_url(raw: &str) -> Result<Url, Invalid> {
    let url =
        Url::parse(raw).map_err(|e| Invalid::new("url", format!("is not an absolute URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Invalid::one_of(
            "url",
            "must use http or https",
            ["https://", "http://"],
        ));
    }
    if url.host().is_none() {
        return Err(Invalid::new("url", "must name a host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Invalid::new(
            "url",
            "must not carry credentials (they would show in every log and listing); verify the signature instead",
        ));
    }
    if url.fragment().is_some() {
        return Err(Invalid::new("url", "must not have a #fragment"));
    }
    Ok(url)
}

/// Resolves the URL's host and refuses it when any address it resolves to may not be a target
/// (unless private networks are allowed), or when it does not resolve at all.
pub async fn check_target(url: &Url, allow_private: bool) -> Result<(), Invalid> {
    let host = url
        .host_str()
        .ok_or_else(|| Invalid::new("url", "must name a host"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = url.port_or_known_default().unwrap_or(443);
    let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((host, port)))
            .await
            .map_err(|_| Invalid::new("url", format!("the host `{host}` did not resolve in time")))?
            .map_err(|e| Invalid::new("url", format!("the host `{host}` does not resolve: {e}")))?
            .collect(),
    };
    if addrs.is_empty() {
        return Err(Invalid::new(
            "url",
            format!("the host `{host}` has no address"),
        ));
    }
    if allow_private {
        return Ok(());
    }
    for a in &addrs {
        if let Some(why) = forbidden(a.ip()) {
            return Err(Invalid::new(
                "url",
                format!(
                    "resolves to {} ({why} address); webhooks go only to public addresses unless the server sets webhooks.allow_private_networks",
                    a.ip()
                ),
            ));
        }
    }
    Ok(())
}

/// The delivery client's resolver: the system's, minus the addresses webhooks may not reach.
#[derive(Debug, Clone, Copy)]
pub struct GuardedResolver {
    pub allow_private: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|a| allow_private || forbidden(a.ip()).is_none())
                .collect();
            if allowed.is_empty() {
                let err: Box<dyn std::error::Error + Send + Sync> = format!(
                    "refused: `{host}` resolves only to addresses webhooks may not reach ({:?})",
                    found.iter().map(SocketAddr::ip).collect::<Vec<_>>()
                )
                .into();
                return Err(err);
            }
            let addrs: Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

/// The same rule for a URL whose host is an IP address, which the client connects to without
/// resolving.
pub fn literal_forbidden(url: &Url, allow_private: bool) -> Option<String> {
    if allow_private {
        return None;
    }
    let ip = match url.host()? {
        url::Host::Ipv4(v4) => IpAddr::V4(v4),
        url::Host::Ipv6(v6) => IpAddr::V6(v6),
        url::Host::Domain(_) => return None,
    };
    forbidden(ip).map(|why| format!("refused: {ip} is a {why} address"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_special_addresses_are_forbidden_public_ones_not() {
        for ip in [
            "127.0.0.1",
            "127.1.2.3",
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "169.254.169.254",
            "100.100.100.200",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fd00:ec2::254",
            "fc00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.1.2.3",
            "64:ff9b::a9fe:a9fe",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(forbidden(ip).is_some(), "{ip} should be forbidden");
        }
        for ip in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700::1111",
            "172.32.0.1",
            "100.128.0.1",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(forbidden(ip), None, "{ip} should be allowed");
        }
    }

    #[test]
    fn url_shapes() {
        assert!(parse_url("https://example.com/hook").is_ok());
        assert!(parse_url("http://example.com:8080/hook?x=1").is_ok());
        for bad in [
            "ftp://example.com/",
            "example.com/hook",
            "https://user:pw@example.com/",
            "https://example.com/#x",
            "file:///etc/passwd",
            "",
        ] {
            assert_eq!(parse_url(bad).unwrap_err().field, "url", "{bad}");
        }
    }

    #[tokio::test]
    async fn names_and_literals_that_reach_private_addresses_are_refused() {
        for url in [
            "http://127.0.0.1:9/x",
            "http://[::1]/",
            "http://localhost:9/",
            "http://169.254.169.254/latest",
        ] {
            let url = parse_url(url).unwrap();
            assert!(check_target(&url, false).await.is_err(), "{url}");
            assert!(check_target(&url, true).await.is_ok(), "{url}");
        }
        // The resolver the delivery client connects through refuses the same names at
        // connect time.
        let r = GuardedResolver {
            allow_private: false,
        };
        let err = match r.resolve("localhost".parse().unwrap()).await {
            Ok(addrs) => panic!("resolved to {:?}", addrs.collect::<Vec<_>>()),
            Err(e) => e.to_string(),
        };
        assert!(err.contains("refused"), "{err}");
        let r = GuardedResolver {
            allow_private: true,
        };
        assert!(r.resolve("localhost".parse().unwrap()).await.is_ok());
        let literal = parse_url("http://10.0.0.1/").unwrap();
        assert!(literal_forbidden(&literal, false).is_some());
        assert!(literal_forbidden(&literal, true).is_none());
    }
}
