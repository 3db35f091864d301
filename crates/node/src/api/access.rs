//! Who may use the API: the checks every request passes before it reaches a handler.
//!
//! The API signs with the node's key, so a request that reaches it can publish and delete as
//! the node. Three defences, in this order (SECURITY.md says what each one stops):
//!
//! 1. **Host.** A request must be addressed to a loopback name (`localhost`, `127.0.0.1`,
//!    `[::1]`, any port), to the bound address, to any IP address when the API is bound to
//!    all of them (`0.0.0.0`, `[::]`), or to a name of [`Access::allowed_hosts`]. A web page
//!    that rebinds its own name to 127.0.0.1 (DNS rebinding) still sends its own name in
//!    `Host`, and is refused with 403.
//! 2. **Origin.** A request that changes anything (any method but GET, HEAD and OPTIONS,
//!    and a WebSocket upgrade, which opens a byte stream as the node) and carries an `Origin` other than the API's own (`http://` + its `Host`) is refused
//!    with 403, unless [`Access::allowed_origins`] names it. Browsers send `Origin` on every
//!    such cross-site request, the "simple" ones (a `text/plain` POST from a form) included,
//!    so no web page can write through a node's API. Allowed origins also get the CORS
//!    headers their pages need, preflight included.
//! 3. **Token.** When the API is bound beyond loopback, a request that changes anything must
//!    carry `Authorization: Bearer TOKEN` with the node's [`ApiToken`], or is refused with
//!    401. So must a change addressed to a name of [`Access::allowed_hosts`] wherever the API
//!    is bound: those are the names of reverse proxies, which pass on requests from beyond this
//!    machine to a loopback API. Otherwise, on loopback, the token is not needed, and not
//!    checked: whoever reaches a loopback API directly is on this machine already.
//!
//! Reads need no token: what they show (items, peers, counters) is what the network shares
//! anyway. The dashboard is same-origin, so it passes all three on loopback.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ApiError;
use crate::identity::ApiToken;

/// What an API server lets through, besides requests from loopback pages and programs.
#[derive(Clone, Debug, Default)]
pub struct Access {
    /// The bearer token. Required (to start, and on every request that changes anything)
    /// when the API is bound beyond loopback. Default none.
    pub token: Option<ApiToken>,
    /// Web origins (`scheme://host[:port]`, say `https://app.example`) whose pages may
    /// change things through the API, besides its own. Default none.
    pub allowed_origins: Vec<String>,
    /// Names of reverse proxies that requests may be addressed to. A change addressed to one
    /// needs the token wherever the API is bound (a proxy passes on requests from beyond this
    /// machine), and is refused when there is no token. Default none.
    pub allowed_hosts: Vec<String>,
    /// The name the API's own address was given by (`--api NAME:PORT`), which requests may be
    /// addressed to as to the address itself. Default none.
    pub own_host: Option<String>,
}

/// How a request's `Host` was let through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Addressed {
    /// To this API itself: a loopback name, its address, or its own name.
    Directly,
    /// To a reverse proxy's name ([`Access::allowed_hosts`]).
    ThroughProxy,
}

/// Whether an API bound to `addr` is reachable from beyond this machine.
pub fn beyond_loopback(addr: SocketAddr) -> bool {
    !addr.ip().to_canonical().is_loopback()
}

/// The checks of one server: its [`Access`] and the address it is bound to.
#[derive(Clone, Debug)]
pub(super) struct Guard {
    access: Arc<Access>,
    bound: IpAddr,
    /// The token every change must carry (bound beyond loopback), or none.
    required: Option<ApiToken>,
}

impl Guard {
    /// The guard of a server bound to `bound`, or why it must not start.
    pub(super) fn new(mut access: Access, bound: SocketAddr) -> std::io::Result<Self> {
        // Compared as `host_name` leaves a Host: lower case, no final dot.
        for name in access
            .allowed_hosts
            .iter_mut()
            .chain(access.own_host.as_mut())
        {
            *name = host_name(name);
        }
        let required = if beyond_loopback(bound) {
            let token = access.token.clone().ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    format!(
                        "the API on {bound} would be reachable beyond this machine, and it \
                         signs with the node's key: it needs a token. `cairn node` makes one \
                         on first run in DATA_DIR/api.token; clients send it as \
                         `Authorization: Bearer TOKEN`. Or bind the API to 127.0.0.1"
                    ),
                )
            })?;
            Some(token)
        } else {
            None
        };
        Ok(Guard {
            access: Arc::new(access),
            bound: bound.ip().to_canonical(),
            required,
        })
    }

    #[cfg(test)]
    fn host_allowed(&self, host: &str) -> bool {
        self.addressed(host).is_some()
    }

    /// How a request addressed to `host` is let through, if it is.
    fn addressed(&self, host: &str) -> Option<Addressed> {
        let name = host_name(host);
        if name == "localhost" || self.access.own_host.as_ref() == Some(&name) {
            return Some(Addressed::Directly);
        }
        if self.access.allowed_hosts.contains(&name) {
            return Some(Addressed::ThroughProxy);
        }
        let ip = name
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .ok()?
            .to_canonical();
        (ip.is_loopback() || ip == self.bound || self.bound.is_unspecified())
            .then_some(Addressed::Directly)
    }

    fn origin_allowed(&self, origin: &str, host: &str) -> bool {
        let origin = origin.trim_end_matches('/');
        origin.eq_ignore_ascii_case(&format!("http://{host}")) || self.cors_allowed(origin)
    }

    fn cors_allowed(&self, origin: &str) -> bool {
        let origin = origin.trim_end_matches('/');
        self.access
            .allowed_origins
            .iter()
            .any(|allowed| allowed.trim_end_matches('/').eq_ignore_ascii_case(origin))
    }

    fn token_offered(&self, headers: &HeaderMap, token: &ApiToken) -> bool {
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|offered| token.matches(offered.trim()))
    }

    /// Why `request` is refused, if it is.
    fn refusal(&self, method: &Method, headers: &HeaderMap) -> Option<Response> {
        let forbidden = |message: String| ApiError::new(StatusCode::FORBIDDEN, message);
        let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
            return Some(forbidden("a request needs a Host header".into()).into_response());
        };
        let Some(addressed) = self.addressed(host) else {
            return Some(
                forbidden(format!(
                    "requests addressed to {host:?} are refused (a defence against DNS \
                     rebinding): use a loopback address or the API's own, or list the name \
                     in api_allowed_hosts"
                ))
                .into_response(),
            );
        };
        // A WebSocket (a byte stream as the node) is a change: browsers open one to any
        // site without asking CORS, so only the checks below keep a web page out of it.
        let upgrade = headers.contains_key(header::UPGRADE);
        if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) && !upgrade {
            return None;
        }
        let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
        if let Some(origin) = origin.filter(|o| !self.origin_allowed(o, host)) {
            return Some(
                forbidden(format!(
                    "a change from the web page of {origin:?} is refused (a defence against \
                     cross-site requests): list the origin in api_allowed_origins to allow it"
                ))
                .into_response(),
            );
        }
        let required = match addressed {
            Addressed::Directly => self.required.as_ref(),
            Addressed::ThroughProxy => self.access.token.as_ref(),
        };
        if addressed == Addressed::ThroughProxy && required.is_none() {
            return Some(
                forbidden(format!(
                    "a change through {host:?}, a reverse proxy's name, needs the node's token, \
                     and this node has none"
                ))
                .into_response(),
            );
        }
        match required {
            Some(token) if !self.token_offered(headers, token) => {
                let mut response = ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "this API is reachable beyond this machine and takes changes only with \
                     its token: send `Authorization: Bearer TOKEN`, TOKEN being the contents \
                     of the node's DATA_DIR/api.token (the cairn CLI reads it there, or takes \
                     --token or CAIRN_API_TOKEN)",
                )
                .into_response();
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"cairn\""),
                );
                Some(response)
            }
            _ => None,
        }
    }

    /// The answer to a CORS preflight from an allowed origin.
    fn preflight(&self, method: &Method, headers: &HeaderMap) -> Option<Response> {
        let origin = headers.get(header::ORIGIN)?;
        if *method != Method::OPTIONS
            || !headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
            || !self.cors_allowed(origin.to_str().ok()?)
        {
            return None;
        }
        let mut response = StatusCode::NO_CONTENT.into_response();
        let out = response.headers_mut();
        out.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        out.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, PUT, POST, DELETE"),
        );
        out.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("authorization, content-type"),
        );
        out.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from(600));
        out.insert(header::VARY, HeaderValue::from_static("origin"));
        Some(response)
    }
}

/// `host[:port]` without the port, lower case, without a final dot.
fn host_name(host: &str) -> String {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split_once(']').map_or(host, |(ip, _)| ip)
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => host,
        }
    };
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// The middleware: refuses what [`Guard`] refuses, answers allowed preflights, and adds the
/// CORS header to answers for allowed origins.
pub(super) async fn check(State(guard): State<Guard>, request: Request, next: Next) -> Response {
    let (method, headers) = (request.method().clone(), request.headers().clone());
    if let Some(refused) = guard.refusal(&method, &headers) {
        return refused;
    }
    if let Some(preflight) = guard.preflight(&method, &headers) {
        return preflight;
    }
    let mut response = next.run(request).await;
    if let Some(origin) = headers.get(header::ORIGIN) {
        if origin.to_str().is_ok_and(|o| guard.cors_allowed(o)) {
            let out = response.headers_mut();
            out.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
            out.insert(header::VARY, HeaderValue::from_static("origin"));
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_lose_their_port_and_case() {
        assert_eq!(host_name("LocalHost:7401"), "localhost");
        assert_eq!(host_name("[::1]:7401"), "::1");
        assert_eq!(host_name("[::1]"), "::1");
        assert_eq!(host_name("127.0.0.1"), "127.0.0.1");
        assert_eq!(host_name("evil.example.:80"), "evil.example");
    }

    #[test]
    fn a_loopback_api_allows_loopback_hosts_only() {
        let guard = Guard::new(Access::default(), "127.0.0.1:7401".parse().expect("addr"))
            .expect("no token needed on loopback");
        for host in [
            "localhost",
            "localhost:7401",
            "127.0.0.1:7401",
            "[::1]:9",
            "127.3.2.1",
        ] {
            assert!(guard.host_allowed(host), "{host}");
        }
        for host in [
            "rebind.evil.example",
            "192.168.1.5:7401",
            "localhost.evil.example",
        ] {
            assert!(!guard.host_allowed(host), "{host}");
        }
    }

    #[test]
    fn beyond_loopback_needs_a_token_to_start() {
        let any: SocketAddr = "0.0.0.0:7401".parse().expect("addr");
        assert!(Guard::new(Access::default(), any).is_err());
        let access = Access {
            token: Some(ApiToken::new(&"ab".repeat(32))),
            ..Access::default()
        };
        let guard = Guard::new(access, any).expect("a token is enough");
        assert!(guard.host_allowed("192.168.1.5:7401"));
        assert!(!guard.host_allowed("rebind.evil.example:7401"));
        assert!(beyond_loopback("[::]:1".parse().expect("addr")));
        assert!(!beyond_loopback(
            "[::ffff:127.0.0.1]:1".parse().expect("addr")
        ));
    }
}
