//! Where `sim observe` sends a deployment's attempts: the `--endpoint
//! DEPLOYMENT=PROTOCOL:URL` spec ([`EndpointSpec`]), the protocols ([`Protocol`]) and the API
//! key read from the environment variable the scenario names ([`ApiKey`], whose `Debug` and
//! `Display` never show it).
//!
//! It must not know how requests are built or replayed.

use std::fmt;

/// The wire protocol of an endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// The Anthropic Messages API: `POST {url}/v1/messages`.
    Anthropic,
    /// The OpenAI Chat Completions API: `POST {url}/v1/chat/completions` (OpenAI, LiteLLM's
    /// proxy, vLLM, OpenRouter…).
    OpenAi,
}

impl Protocol {
    pub fn parse(name: &str) -> Option<Protocol> {
        match name {
            "anthropic" => Some(Protocol::Anthropic),
            "openai" => Some(Protocol::OpenAi),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Anthropic => "anthropic",
            Protocol::OpenAi => "openai",
        }
    }

    /// The path the client appends to the endpoint's base URL.
    pub fn path(self) -> &'static str {
        match self {
            Protocol::Anthropic => "/v1/messages",
            Protocol::OpenAi => "/v1/chat/completions",
        }
    }
}

/// One `--endpoint`: a deployment of the scenario, its protocol and base URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointSpec {
    pub deployment: String,
    pub protocol: Protocol,
    /// The base URL without a trailing `/` (`http://127.0.0.1:8080`, `https://api.anthropic.com`).
    pub base_url: String,
}

impl EndpointSpec {
    /// Parses `DEPLOYMENT=PROTOCOL:URL` (the deployment is everything before the first `=`).
    /// Errors are messages for the flag, naming what is wrong.
    pub fn parse(spec: &str) -> Result<EndpointSpec, String> {
        let example = "e.g. anthropic/sonnet=anthropic:http://127.0.0.1:8080";
        let Some((deployment, rest)) = spec.split_once('=') else {
            return Err(format!("{spec:?}: expected DEPLOYMENT=PROTOCOL:URL, {example}"));
        };
        if deployment.is_empty() {
            return Err(format!("{spec:?}: the deployment name is empty, {example}"));
        }
        let Some((protocol, url)) = rest.split_once(':') else {
            return Err(format!("{spec:?}: expected PROTOCOL:URL after '=', {example}"));
        };
        let protocol = Protocol::parse(protocol)
            .ok_or_else(|| format!("{spec:?}: unknown protocol {protocol:?} (known: anthropic, openai)"))?;
        let parsed = reqwest::Url::parse(url).map_err(|e| {
            format!("{spec:?}: {url:?} is not a URL ({e}); the URL must be http:// or https://")
        })?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none_or(str::is_empty) {
            return Err(format!("{spec:?}: the URL must be http:// or https:// with a host, {example}"));
        }
        if parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(format!(
                "{spec:?}: the URL is a base (the client appends {}); drop its query",
                protocol.path()
            ));
        }
        Ok(EndpointSpec {
            deployment: deployment.to_string(),
            protocol,
            base_url: url.trim_end_matches('/').to_string(),
        })
    }

    /// The URL requests are posted to.
    pub fn request_url(&self) -> String {
        format!("{}{}", self.base_url, self.protocol.path())
    }
}

/// An API key. Shown as `[redacted]`; only [`ApiKey::header_value`] reveals it, marked
/// sensitive so the HTTP stack never logs it either.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// The key in environment variable `name`; `Err` names the variable, never a value.
    pub fn from_env(name: &str) -> Result<ApiKey, String> {
        match std::env::var(name) {
            Ok(key) if !key.trim().is_empty() => Ok(ApiKey(key.trim().to_string())),
            Ok(_) => Err(format!("environment variable {name} is empty")),
            Err(std::env::VarError::NotPresent) => Err(format!("environment variable {name} is not set")),
            Err(std::env::VarError::NotUnicode(_)) => {
                Err(format!("environment variable {name} is not valid UTF-8"))
            }
        }
    }

    /// The header value: the key itself (`x-api-key`) or `Bearer KEY` (`authorization`).
    pub fn header_value(&self, bearer: bool) -> Result<reqwest::header::HeaderValue, String> {
        let text = if bearer { format!("Bearer {}", self.0) } else { self.0.clone() };
        let mut value = reqwest::header::HeaderValue::from_str(&text)
            .map_err(|_| "the API key holds characters an HTTP header cannot carry".to_string())?;
        value.set_sensitive(true);
        Ok(value)
    }

    /// Replaces every occurrence of the key in `text` (defence in depth for messages that
    /// quote a server's answer).
    pub fn redact(&self, text: &str) -> String {
        text.replace(&self.0, "[redacted]")
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey([redacted])")
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_specs_parse_and_bad_ones_say_why() {
        let e = EndpointSpec::parse("anthropic/sonnet=anthropic:http://127.0.0.1:8080/").unwrap();
        assert_eq!(e.deployment, "anthropic/sonnet");
        assert_eq!(e.protocol, Protocol::Anthropic);
        assert_eq!(e.request_url(), "http://127.0.0.1:8080/v1/messages");
        let e = EndpointSpec::parse("gpt=openai:https://proxy.example/litellm").unwrap();
        assert_eq!(e.request_url(), "https://proxy.example/litellm/v1/chat/completions");
        for (spec, says) in [
            ("anthropic/sonnet", "expected DEPLOYMENT=PROTOCOL:URL"),
            ("=anthropic:http://h", "deployment name is empty"),
            ("a=grpc:http://h", "unknown protocol \"grpc\""),
            ("a=anthropic", "expected PROTOCOL:URL"),
            ("a=anthropic:127.0.0.1:80", "http:// or https://"),
            ("a=anthropic:ftp://h", "http:// or https://"),
            ("a=openai:http://h/?x=1", "drop its query"),
        ] {
            let error = EndpointSpec::parse(spec).unwrap_err();
            assert!(error.contains(says), "{spec}: {error}");
        }
    }

    #[test]
    fn a_key_never_shows_in_debug_or_display() {
        let key = ApiKey("sk-secret-123".into());
        assert_eq!(format!("{key:?} {key}"), "ApiKey([redacted]) [redacted]");
        assert_eq!(key.redact("got sk-secret-123 back"), "got [redacted] back");
        assert!(key.header_value(true).unwrap().is_sensitive());
    }
}
