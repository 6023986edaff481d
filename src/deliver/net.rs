//! What network sinks share besides the spool: the HTTP client with its TLS roots and
//! redirect policy, credentials that never print, environment lookup, and URLs fit for
//! messages.

use std::fmt;
use std::path::PathBuf;

use crate::env::first_env;
use crate::{Error, Result};

/// A credential that never shows up in `Debug` output or messages.
#[derive(Clone, PartialEq, Eq)]
#[cfg_attr(not(any(feature = "http", feature = "mlflow")), allow(dead_code))]
pub(crate) struct Secret(pub(crate) String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Certificates and checks beyond the system trust store, for a network sink's client.
///
/// Every client trusts the system's store (and the web's roots, for machines without
/// one), plus the PEM bundle in `SSL_CERT_FILE`, plus what a backend adds from its own
/// conventional variables (`MLFLOW_TRACKING_SERVER_CERT_PATH`,
/// `OTEL_EXPORTER_OTLP_CERTIFICATE`) or options.
#[derive(Debug, Clone, Default)]
pub(crate) struct Tls {
    roots: Vec<reqwest::Certificate>,
    /// Accept any server certificate (`MLFLOW_TRACKING_INSECURE_TLS`).
    insecure: bool,
}

impl Tls {
    /// `SSL_CERT_FILE` and the given PEM files, read and parsed now so that a missing or
    /// broken file fails `build()` with its path instead of every request later.
    pub(crate) fn load(files: &[PathBuf], insecure: bool) -> Result<Tls> {
        let mut all: Vec<PathBuf> = first_env(&["SSL_CERT_FILE"])
            .map(PathBuf::from)
            .into_iter()
            .collect();
        all.extend(files.iter().cloned());
        let mut roots = Vec::new();
        for path in &all {
            let pem =
                std::fs::read(path).map_err(|e| Error::io("read CA certificates from", path, e))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                Error::Config(format!(
                    "{}: not a PEM certificate bundle: {e}",
                    path.display()
                ))
            })?;
            if certs.is_empty() {
                return Err(Error::Config(format!(
                    "{}: no PEM certificates in it",
                    path.display()
                )));
            }
            roots.extend(certs);
        }
        Ok(Tls { roots, insecure })
    }
}

/// The HTTP client every network sink uses: the [`Tls`] roots, and redirects not
/// followed: a 301/302 would turn the POST into a GET with an empty body (and could carry
/// credentials to another origin), so a 3xx is a refusal the user has to fix by giving
/// the final URL. Build it on the thread that uses it (never inside an async runtime).
pub(crate) fn http_client(tls: &Tls) -> reqwest::Result<reqwest::blocking::Client> {
    let mut builder = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .danger_accept_invalid_certs(tls.insecure);
    for cert in &tls.roots {
        builder = builder.add_root_certificate(cert.clone());
    }
    builder.build()
}

/// A network sink's HTTP client, built on first use on the thread that uses it (a
/// blocking client must not be created or dropped inside an async runtime, which the
/// caller's thread may be). A failure to build it is reported once; callers retry it like
/// a network error.
#[cfg(feature = "network")]
#[derive(Debug)]
pub(crate) struct LazyClient {
    name: &'static str,
    tls: Tls,
    client: Option<reqwest::blocking::Client>,
    reported: bool,
}

#[cfg(feature = "network")]
impl LazyClient {
    /// A client for sink `name` (for the message) with these TLS settings.
    pub(crate) fn new(name: &'static str, tls: Tls) -> Self {
        LazyClient {
            name,
            tls,
            client: None,
            reported: false,
        }
    }

    /// The client, built now if needed; `None` when it cannot be built.
    pub(crate) fn get(&mut self) -> Option<&reqwest::blocking::Client> {
        if self.client.is_none() {
            match http_client(&self.tls) {
                Ok(client) => self.client = Some(client),
                Err(e) if !self.reported => {
                    self.reported = true;
                    eprintln!(
                        "trainlog: {}: could not create the HTTP client: {e}",
                        self.name
                    );
                }
                Err(_) => {}
            }
        }
        self.client.as_ref()
    }
}

/// What a response means for delivery.
#[cfg(feature = "network")]
pub(crate) struct Answer {
    /// Delivered, retry (honouring `Retry-After`), or refused for good.
    pub(crate) verdict: crate::deliver::retry::Verdict,
    pub(crate) status: u16,
    /// The body; for anything but a delivery, the text to report (see [`refusal_text`]).
    pub(crate) text: String,
}

#[cfg(feature = "network")]
impl Answer {
    /// The answer as a spool delivery of `count` lines: a refusal carries the status and
    /// the text to report.
    #[cfg_attr(not(any(feature = "http", feature = "webhook")), allow(dead_code))]
    pub(crate) fn delivery(self, count: usize) -> crate::deliver::spool::Delivery {
        let refusal = (self.verdict == crate::deliver::retry::Verdict::Reject)
            .then_some((self.status, self.text));
        crate::deliver::spool::Delivery {
            verdict: self.verdict,
            count,
            refusal,
        }
    }
}

/// Reads a response: its verdict, status and text.
#[cfg(feature = "network")]
pub(crate) fn answer(response: reqwest::blocking::Response) -> Answer {
    let status = response.status().as_u16();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (retry_after, location) = (header("Retry-After"), header("Location"));
    let verdict = crate::deliver::retry::classify(status, retry_after.as_deref());
    let body = response.text().unwrap_or_default();
    let text = match verdict {
        crate::deliver::retry::Verdict::Done => body,
        _ => refusal_text(status, location.as_deref(), &body),
    };
    Answer {
        verdict,
        status,
        text,
    }
}

/// The refusal text for a response: the server's reply, or for a redirect where it
/// pointed (redacted) and why it was not followed.
#[cfg_attr(not(feature = "network"), allow(dead_code))]
pub(crate) fn refusal_text(status: u16, location: Option<&str>, body: &str) -> String {
    if (300..400).contains(&status) {
        let to = location
            .map(|l| match reqwest::Url::parse(l) {
                Ok(url) => redact_url(&url),
                Err(_) => l.chars().take(200).collect(),
            })
            .unwrap_or_else(|| "nowhere".into());
        return format!(
            "redirected to {to}; trainlog does not follow redirects (a redirected POST \
             loses its body): configure the final URL"
        );
    }
    body.chars().take(300).collect()
}

/// A URL fit for messages: user name and password, and query values whose names look
/// like credentials (`api_key`, `token`, `sig`, ...), replaced by `***`.
pub(crate) fn redact_url(url: &reqwest::Url) -> String {
    let mut u = url.clone();
    if !u.username().is_empty() || u.password().is_some() {
        let _ = u.set_password(None);
        let _ = u.set_username("***");
    }
    if u.query().is_some() {
        let secret = |k: &str| {
            let k = k.to_ascii_lowercase();
            [
                "key",
                "token",
                "secret",
                "pass",
                "auth",
                "sig",
                "credential",
            ]
            .iter()
            .any(|s| k.contains(s))
        };
        let pairs: Vec<(String, String)> = u
            .query_pairs()
            .map(|(k, v)| {
                let v = if secret(&k) {
                    "***".into()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        u.query_pairs_mut().clear().extend_pairs(pairs);
    }
    u.to_string()
}

/// A URL as recorded in a spool's session line: no password (credentials never go to
/// disk; they come from the options or the environment when the lines are sent).
#[cfg_attr(not(feature = "network"), allow(dead_code))]
pub(crate) fn without_password(url: &reqwest::Url) -> String {
    let mut url = url.clone();
    let _ = url.set_password(None);
    url.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_redacted_for_messages() {
        let url = reqwest::Url::parse(
            "https://alice:pa55@host:8443/p?api_key=k3y&run=7&X-Amz-Signature=s1g",
        )
        .unwrap();
        let shown = redact_url(&url);
        assert!(
            !shown.contains("pa55") && !shown.contains("k3y") && !shown.contains("s1g"),
            "{shown}"
        );
        assert!(
            shown.contains("host:8443/p") && shown.contains("run=7"),
            "{shown}"
        );
        let text = refusal_text(302, Some("https://u:pw@other/x?token=t0k"), "");
        assert!(text.contains("does not follow redirects"), "{text}");
        assert!(!text.contains("pw") && !text.contains("t0k"), "{text}");
    }

    #[test]
    fn certificate_files_are_checked_when_the_sink_is_built() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let err = Tls::load(std::slice::from_ref(&missing), false)
            .unwrap_err()
            .to_string();
        assert!(err.contains(&missing.display().to_string()), "{err}");
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate").unwrap();
        let err = Tls::load(&[junk], false).unwrap_err().to_string();
        assert!(
            err.contains("no PEM certificates") || err.contains("not a PEM"),
            "{err}"
        );
    }
}
