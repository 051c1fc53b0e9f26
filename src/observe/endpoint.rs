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

/// An `--endpoint` spec that cannot be used; `Display` names the spec and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{spec:?}: {problem}")]
pub struct EndpointError {
    pub spec: String,
    pub problem: EndpointProblem,
}

/// The example every endpoint message that is about the spec's shape ends with.
const EXAMPLE: &str = "e.g. anthropic/sonnet=anthropic:http://127.0.0.1:8080";

/// What is wrong with an endpoint spec.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EndpointProblem {
    #[error("expected DEPLOYMENT=PROTOCOL:URL, {EXAMPLE}")]
    NoEquals,
    #[error("the deployment name is empty, {EXAMPLE}")]
    EmptyDeployment,
    #[error("expected PROTOCOL:URL after '=', {EXAMPLE}")]
    NoProtocol,
    #[error("unknown protocol {protocol:?} (known: anthropic, openai)")]
    UnknownProtocol { protocol: String },
    /// `reason` is the URL parser's message.
    #[error("{url:?} is not a URL ({reason}); the URL must be http:// or https://")]
    NotAUrl { url: String, reason: String },
    #[error("the URL must be http:// or https:// with a host, {EXAMPLE}")]
    NotHttp,
    #[error("the URL is a base (the client appends {}); drop its query", .protocol.path())]
    HasQuery { protocol: Protocol },
}

impl EndpointSpec {
    /// Parses `DEPLOYMENT=PROTOCOL:URL` (the deployment is everything before the first `=`).
    pub fn parse(spec: &str) -> Result<EndpointSpec, EndpointError> {
        let fail = |problem| EndpointError { spec: spec.to_string(), problem };
        let Some((deployment, rest)) = spec.split_once('=') else {
            return Err(fail(EndpointProblem::NoEquals));
        };
        if deployment.is_empty() {
            return Err(fail(EndpointProblem::EmptyDeployment));
        }
        let Some((protocol, url)) = rest.split_once(':') else {
            return Err(fail(EndpointProblem::NoProtocol));
        };
        let protocol = Protocol::parse(protocol)
            .ok_or_else(|| fail(EndpointProblem::UnknownProtocol { protocol: protocol.to_string() }))?;
        let parsed = reqwest::Url::parse(url)
            .map_err(|e| fail(EndpointProblem::NotAUrl { url: url.to_string(), reason: e.to_string() }))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none_or(str::is_empty) {
            return Err(fail(EndpointProblem::NotHttp));
        }
        if parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(fail(EndpointProblem::HasQuery { protocol }));
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
    pub fn from_env(name: &str) -> Result<ApiKey, KeyError> {
        let fail = |problem| KeyError::Variable { variable: name.to_string(), problem };
        match std::env::var(name) {
            Ok(key) if !key.trim().is_empty() => Ok(ApiKey(key.trim().to_string())),
            Ok(_) => Err(fail(VariableProblem::Empty)),
            Err(std::env::VarError::NotPresent) => Err(fail(VariableProblem::NotSet)),
            Err(std::env::VarError::NotUnicode(_)) => Err(fail(VariableProblem::NotUnicode)),
        }
    }

    /// The header value: the key itself (`x-api-key`) or `Bearer KEY` (`authorization`).
    pub fn header_value(&self, bearer: bool) -> Result<reqwest::header::HeaderValue, KeyError> {
        let text = if bearer { format!("Bearer {}", self.0) } else { self.0.clone() };
        let mut value =
            reqwest::header::HeaderValue::from_str(&text).map_err(|_| KeyError::NotAHeaderValue)?;
        value.set_sensitive(true);
        Ok(value)
    }

    /// Replaces every occurrence of the key in `text` (defence in depth for messages that
    /// quote a server's answer).
    pub fn redact(&self, text: &str) -> String {
        text.replace(&self.0, "[redacted]")
    }
}

/// An API key that cannot be used. No variant holds the key: messages never show it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("environment variable {variable} {problem}")]
    Variable { variable: String, problem: VariableProblem },
    #[error("the API key holds characters an HTTP header cannot carry")]
    NotAHeaderValue,
}

/// What is wrong with the environment variable that should hold a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VariableProblem {
    #[error("is empty")]
    Empty,
    #[error("is not set")]
    NotSet,
    #[error("is not valid UTF-8")]
    NotUnicode,
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
            let error = EndpointSpec::parse(spec).unwrap_err().to_string();
            assert!(error.contains(says), "{spec}: {error}");
        }
        assert_eq!(
            EndpointSpec::parse("a=grpc:http://h").unwrap_err(),
            EndpointError {
                spec: "a=grpc:http://h".into(),
                problem: EndpointProblem::UnknownProtocol { protocol: "grpc".into() }
            }
        );
        assert_eq!(
            EndpointSpec::parse("a=openai:http://h/?x=1").unwrap_err().to_string(),
            "\"a=openai:http://h/?x=1\": the URL is a base (the client appends /v1/chat/completions); drop its query"
        );
        assert_eq!(
            EndpointSpec::parse("=anthropic:http://h").unwrap_err().to_string(),
            "\"=anthropic:http://h\": the deployment name is empty, e.g. anthropic/sonnet=anthropic:http://127.0.0.1:8080"
        );
    }

    #[test]
    fn a_key_never_shows_in_debug_or_display() {
        let key = ApiKey("sk-secret-123".into());
        assert_eq!(format!("{key:?} {key}"), "ApiKey([redacted]) [redacted]");
        assert_eq!(key.redact("got sk-secret-123 back"), "got [redacted] back");
        assert!(key.header_value(true).unwrap().is_sensitive());
        assert_eq!(
            ApiKey("bad\nkey".into()).header_value(false).unwrap_err().to_string(),
            "the API key holds characters an HTTP header cannot carry"
        );
    }

    #[test]
    fn a_missing_key_names_its_variable() {
        let e = ApiKey::from_env("ROUTESIM_TEST_KEY_THAT_IS_NEVER_SET").unwrap_err();
        assert_eq!(e.to_string(), "environment variable ROUTESIM_TEST_KEY_THAT_IS_NEVER_SET is not set");
    }
}
