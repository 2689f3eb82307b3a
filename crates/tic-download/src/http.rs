//! Fetching one URL as img2dataset 1.40's `download_image_with_retry` does, on one async client:
//! its User-Agent (a fixed Firefox string, plus `(compatible; TOKEN; +https://github.com/rom1504/img2dataset)`
//! with a token), its `X-Robots-Tag` opt-out check (`is_disallowed`: a directive among
//! `noai, noimageai, noindex, noimageindex`, for all agents or for the token), urllib's redirect
//! rules (at most 10 redirects, a URL seen 4 times is a loop) and urllib's error strings, so that
//! the per-row `error_message` and `status_dict` compare equal with img2dataset's.
//!
//! Unlike img2dataset (a fresh connection per request, immediate retries of every error),
//! connections are reused, a global and a per-host limit bound the requests in flight, and only
//! transient failures (timeouts, connection errors, HTTP 5xx and 429, truncated bodies) are
//! retried, with exponential backoff: a 404 or an opt-out gives the same final message either way.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;

/// img2dataset's User-Agent without a token.
pub const USER_AGENT: &str =
    "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:72.0) Gecko/20100101 Firefox/72.0";

/// The directives img2dataset refuses by default (`disallowed_header_directives`).
pub const DISALLOWED_DIRECTIVES: [&str; 4] = ["noai", "noimageai", "noindex", "noimageindex"];

/// img2dataset's message for an opted-out image.
pub const ROBOTS_ERROR: &str = "Use of image disallowed by X-Robots-Tag directive";

/// urllib's `max_redirections` and `max_repeats`.
const MAX_REDIRECTIONS: usize = 10;
const MAX_REPEATS: usize = 4;

/// A failed fetch: urllib's message and whether another try may succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchError {
    /// The message img2dataset records (`str(err)` of urllib's exception).
    pub message: String,
    /// Timeouts, connection errors, 5xx, 429, truncated bodies.
    pub transient: bool,
}

impl FetchError {
    fn new(message: impl Into<String>, transient: bool) -> Self {
        FetchError {
            message: message.into(),
            transient,
        }
    }
}

/// Whether an `error_message` of a finished row is one a retry may fix (the errors [`Fetcher`]
/// retries; for tools that re-fetch failed rows).
pub fn is_transient_message(msg: &str) -> bool {
    msg == "timed out"
        || msg.starts_with("<urlopen error")
        || msg.starts_with("IncompleteRead(")
        || msg.starts_with("HTTP Error 429")
        || msg.starts_with("HTTP Error 5")
        || msg.starts_with("error sending request")
        || msg == "Remote end closed connection without response"
        || msg.starts_with("[Errno 104]")
}

/// img2dataset's `is_disallowed` over the `X-Robots-Tag` values of a response.
pub fn is_disallowed<'a>(
    values: impl IntoIterator<Item = &'a str>,
    token: Option<&str>,
    directives: &HashSet<String>,
) -> bool {
    values.into_iter().any(|v| {
        let (ua, rest) = match v.split_once(':') {
            Some((ua, rest)) => (Some(ua.to_lowercase()), rest),
            None => (None, v),
        };
        let for_us = match &ua {
            None => true,
            Some(ua) => Some(ua.as_str()) == token,
        };
        for_us
            && rest
                .split(',')
                .any(|d| directives.contains(&d.trim().to_lowercase()))
    })
}

/// Settings of a [`Fetcher`].
#[derive(Clone, Debug)]
pub struct FetchOpts {
    /// Socket timeout (connect, and each read).
    pub timeout: Duration,
    /// Retries after the first try (transient errors only).
    pub retries: u32,
    /// The user-agent token (lower-cased), if any.
    pub token: Option<String>,
    /// Honour `X-Robots-Tag`.
    pub robots: bool,
    /// Requests in flight in all.
    pub max_connections: usize,
    /// Requests in flight per host.
    pub max_per_host: usize,
    /// Largest body accepted.
    pub max_body: u64,
    /// First backoff before a retry (doubled each time).
    pub backoff: Duration,
}

/// One HTTP client with its limits; cheap to share behind an `Arc`.
pub struct Fetcher {
    client: reqwest::Client,
    opts: FetchOpts,
    user_agent: String,
    directives: HashSet<String>,
    global: Semaphore,
    hosts: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl Fetcher {
    /// A client with redirects handled here (urllib's rules) and the socket timeouts.
    pub fn new(opts: FetchOpts) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(opts.timeout)
            .read_timeout(opts.timeout)
            .pool_max_idle_per_host(opts.max_per_host)
            .build()?;
        let mut user_agent = USER_AGENT.to_string();
        if let Some(t) = &opts.token {
            user_agent += &format!(" (compatible; {t}; +https://github.com/rom1504/img2dataset)");
        }
        Ok(Fetcher {
            client,
            user_agent,
            directives: DISALLOWED_DIRECTIVES
                .iter()
                .map(|s| s.to_string())
                .collect(),
            global: Semaphore::new(opts.max_connections.max(1)),
            hosts: Mutex::new(HashMap::new()),
            opts,
        })
    }

    /// Fetches `url` with retries; the body, or the last error.
    pub async fn fetch(&self, url: &str) -> Result<Vec<u8>, FetchError> {
        let host = url::Url::parse(url)
            .ok()
            .and_then(|u| {
                u.host_str()
                    .map(|h| format!("{h}:{}", u.port_or_known_default().unwrap_or(0)))
            })
            .unwrap_or_default();
        let mut attempt = 0;
        loop {
            let res = self.fetch_limited(&host, url).await;
            match res {
                Err(e) if e.transient && attempt < self.opts.retries => {
                    tokio::time::sleep(self.opts.backoff * 2u32.pow(attempt)).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    async fn fetch_limited(&self, host: &str, url: &str) -> Result<Vec<u8>, FetchError> {
        let sem = {
            let mut hosts = self.hosts.lock().expect("host table");
            hosts
                .entry(host.to_string())
                .or_insert_with(|| Arc::new(Semaphore::new(self.opts.max_per_host.max(1))))
                .clone()
        };
        let res = {
            let _h = sem.acquire().await.expect("semaphore open");
            let _g = self.global.acquire().await.expect("semaphore open");
            self.fetch_once(url).await
        };
        let mut hosts = self.hosts.lock().expect("host table");
        // Forget idle hosts (the table would otherwise grow with every host of the pool).
        if Arc::strong_count(&sem) == 2 && sem.available_permits() == self.opts.max_per_host.max(1)
        {
            hosts.remove(host);
        }
        res
    }

    /// One try: redirects as urllib follows them, then status, opt-out and body.
    async fn fetch_once(&self, url: &str) -> Result<Vec<u8>, FetchError> {
        let mut current = url::Url::parse(url)
            .map_err(|_| FetchError::new(format!("unknown url type: '{url}'"), false))?;
        let mut visited: HashMap<String, usize> = HashMap::new();
        loop {
            let resp = self
                .client
                .get(current.clone())
                .header(reqwest::header::USER_AGENT, &self.user_agent)
                .send()
                .await
                .map_err(request_error)?;
            let status = resp.status();
            let reason = status.canonical_reason().unwrap_or("");
            if matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308) {
                if let Some(loc) = resp.headers().get(reqwest::header::LOCATION) {
                    let loc = String::from_utf8_lossy(loc.as_bytes()).to_string();
                    let next = current.join(&loc).map_err(|_| {
                        FetchError::new(format!("HTTP Error {}: {reason}", status.as_u16()), false)
                    })?;
                    let seen = visited.get(next.as_str()).copied().unwrap_or(0);
                    if visited.len() >= MAX_REDIRECTIONS || seen >= MAX_REPEATS {
                        return Err(FetchError::new(
                            format!(
                                "HTTP Error {}: The HTTP server returned a redirect error that would lead to an infinite loop.\nThe last 30x error message was:\n{reason}",
                                status.as_u16()
                            ),
                            false,
                        ));
                    }
                    *visited.entry(next.to_string()).or_insert(0) += 1;
                    current = next;
                    continue;
                }
            }
            if !status.is_success() {
                let code = status.as_u16();
                let transient = code == 429 || code >= 500;
                return Err(FetchError::new(
                    format!("HTTP Error {code}: {reason}"),
                    transient,
                ));
            }
            if self.opts.robots {
                let values = resp
                    .headers()
                    .get_all("x-robots-tag")
                    .iter()
                    .filter_map(|v| v.to_str().ok());
                if is_disallowed(values, self.opts.token.as_deref(), &self.directives) {
                    return Err(FetchError::new(ROBOTS_ERROR, false));
                }
            }
            return self.read_body(resp).await;
        }
    }

    async fn read_body(&self, mut resp: reqwest::Response) -> Result<Vec<u8>, FetchError> {
        let expected = resp.content_length();
        if let Some(n) = expected.filter(|&n| n > self.opts.max_body) {
            return Err(too_big(n, self.opts.max_body));
        }
        let mut body =
            Vec::with_capacity(expected.unwrap_or(64 << 10).min(self.opts.max_body) as usize);
        loop {
            match resp.chunk().await {
                Ok(Some(c)) => {
                    body.extend_from_slice(&c);
                    if body.len() as u64 > self.opts.max_body {
                        return Err(too_big(body.len() as u64, self.opts.max_body));
                    }
                }
                Ok(None) => return Ok(body),
                Err(e) if e.is_timeout() => return Err(FetchError::new("timed out", true)),
                Err(_) => {
                    let more = expected
                        .map(|n| n.saturating_sub(body.len() as u64))
                        .unwrap_or(0);
                    return Err(FetchError::new(
                        format!(
                            "IncompleteRead({} bytes read, {more} more expected)",
                            body.len()
                        ),
                        true,
                    ));
                }
            }
        }
    }
}

fn too_big(n: u64, max: u64) -> FetchError {
    FetchError::new(
        format!("response too large: {n} bytes is over --max_body_mb ({max} bytes)"),
        false,
    )
}

/// urllib's message for an error before the response headers.
fn request_error(e: reqwest::Error) -> FetchError {
    let mut io_kind = None;
    let mut src: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(&e);
    let mut chain = String::new();
    while let Some(s) = src {
        chain.push_str(&s.to_string());
        chain.push(' ');
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            io_kind = Some(io.kind());
        }
        src = s.source();
    }
    let msg = if e.is_timeout() && e.is_connect() {
        "<urlopen error timed out>".to_string()
    } else if e.is_timeout() {
        "timed out".to_string()
    } else if io_kind == Some(std::io::ErrorKind::ConnectionRefused) {
        "<urlopen error [Errno 111] Connection refused>".to_string()
    } else if chain.contains("dns error") {
        "<urlopen error [Errno -2] Name or service not known>".to_string()
    } else if e.is_connect() {
        format!("<urlopen error {}>", chain.trim())
    } else {
        // The server closed the connection without a response: http.client's message.
        "Remote end closed connection without response".to_string()
    };
    FetchError::new(msg, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dirs() -> HashSet<String> {
        DISALLOWED_DIRECTIVES
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    #[test]
    fn robots_tag_as_img2dataset() {
        let d = dirs();
        assert!(is_disallowed(["noai"], None, &d));
        assert!(is_disallowed(["noindex, nofollow"], None, &d));
        assert!(is_disallowed([" NoImageAI "], None, &d));
        assert!(!is_disallowed(["nofollow"], None, &d));
        // For another agent only: allowed; for ours: refused.
        assert!(!is_disallowed(["otherbot: noai"], None, &d));
        assert!(!is_disallowed(["otherbot: noai"], Some("mybot"), &d));
        assert!(is_disallowed(["MyBot: noai"], Some("mybot"), &d));
        assert!(is_disallowed(["nofollow", "noai"], None, &d));
    }

    #[test]
    fn transient_messages() {
        assert!(is_transient_message("timed out"));
        assert!(is_transient_message("HTTP Error 503: Service Unavailable"));
        assert!(is_transient_message(
            "<urlopen error [Errno 111] Connection refused>"
        ));
        assert!(!is_transient_message("HTTP Error 404: Not Found"));
        assert!(!is_transient_message(ROBOTS_ERROR));
    }
}
