//! The egress policy over real HTTP on loopback: which addresses Herald connects to, how it
//! follows redirects, and what an endless body costs. No AWS needed; its own test binary, so
//! that the counting allocator sees only this test's heap.
//!
//! No request here leaves loopback: every non-public address is refused before a connection
//! is attempted (that is the property under test), and names come from the test's own hosts map.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use herald::egress::{Egress, EgressError, EgressSettings, Refusal};
use url::Url;

#[global_allocator]
static HEAP: peak_alloc::PeakAlloc = peak_alloc::PeakAlloc;

/// One test at a time, so the heap's peak is this binary's only test's.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// An endless body's chunk; static, so serving it allocates nothing per chunk.
static CHUNK: [u8; 64 * 1024] = [0x5a; 64 * 1024];
/// The server stops by itself after this much (16 GiB): far past any limit, bounded all the same.
const ENDLESS_CHUNKS: usize = 256 * 1024;

async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

fn redirect(to: String) -> Response {
    (StatusCode::FOUND, [(header::LOCATION, to)]).into_response()
}

async fn server() -> SocketAddr {
    let router = Router::new()
        .route("/image.jpg", get(|| async { ([(header::CONTENT_TYPE, "image/jpeg")], vec![0xffu8; 1024]) }))
        .route(
            "/endless",
            get(|| async {
                let chunks = futures_util::stream::iter(
                    (0..ENDLESS_CHUNKS).map(|_| Ok::<_, std::io::Error>(axum::body::Bytes::from_static(&CHUNK))),
                );
                // No Content-Length: the limit can only be enforced while reading.
                Response::new(Body::from_stream(chunks))
            }),
        )
        .route(
            "/to",
            get(|axum::extract::Query(q): axum::extract::Query<HashMap<String, String>>| async move {
                redirect(q["url"].clone())
            }),
        )
        .route(
            "/hop/{n}",
            get(|axum::extract::Path(n): axum::extract::Path<u32>| async move {
                if n == 0 { redirect("/image.jpg".into()) } else { redirect(format!("/hop/{}", n - 1)) }
            }),
        );
    serve(router).await
}

fn egress(allow_loopback: bool, hosts: &[(&str, &[&str])]) -> Egress {
    let hosts = hosts
        .iter()
        .map(|(name, ips)| (name.to_string(), ips.iter().map(|ip| ip.parse::<IpAddr>().unwrap()).collect()))
        .collect();
    Egress::new(&EgressSettings { allow_loopback, hosts, timeout: Duration::from_secs(10) })
}

fn refusal(result: Result<herald::egress::Fetched, EgressError>) -> Refusal {
    match result {
        Err(EgressError::Refused(refusal)) => refusal,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn every_address_class_redirects_into_them_and_names_resolving_inside_are_refused() {
    let _serial = SERIAL.lock().await;
    let addr = server().await;
    let port = addr.port();
    let local = egress(true, &[("internal.test", &["192.168.0.10", "10.0.0.7"])]);
    let url = |s: String| Url::parse(&s).unwrap();

    // The allowed case first: loopback, because the local runner said so.
    let fetched = local.fetch(&url(format!("http://127.0.0.1:{port}/image.jpg")), 5 << 20).await.unwrap();
    assert_eq!((fetched.bytes.len(), fetched.content_type.as_str()), (1024, "image/jpeg"));

    // Literal addresses of every class, refused before any connection.
    for target in [
        "https://10.0.0.1/a.jpg",
        "https://172.20.1.1/a.jpg",
        "https://192.168.1.1/a.jpg",
        "https://169.254.169.254/latest/meta-data/",
        "https://100.64.0.1/a.jpg",
        "https://224.0.0.1/a.jpg",
        "https://0.0.0.0/a.jpg",
        "https://[fd00::1]/a.jpg",
        "https://[fe80::1]/a.jpg",
        "https://[ff02::1]/a.jpg",
        "https://[::]/a.jpg",
    ] {
        let refused = refusal(local.fetch(&url(target.into()), 1024).await);
        assert!(matches!(refused, Refusal::Address { .. }), "{target}: {refused}");
    }
    // IPv4-mapped loopback stays refused even where loopback is allowed.
    let mapped = refusal(local.fetch(&url(format!("http://[::ffff:127.0.0.1]:{port}/image.jpg")), 1024).await);
    assert!(matches!(mapped, Refusal::Address { class: "IPv4-mapped", .. }), "{mapped}");

    // A redirect into each: the hop is checked like the first request.
    for inside in [
        "http://10.0.0.1/a.jpg".to_owned(),
        "https://169.254.169.254/latest/meta-data/".to_owned(),
        format!("http://[::ffff:127.0.0.1]:{port}/image.jpg"),
        format!("https://internal.test:{port}/image.jpg"),
    ] {
        let mut hop = url(format!("http://127.0.0.1:{port}/to"));
        hop.query_pairs_mut().append_pair("url", &inside);
        let refused = refusal(local.fetch(&hop, 1024).await);
        assert!(
            matches!(refused, Refusal::Address { .. } | Refusal::Resolves(_) | Refusal::Scheme(_)),
            "{inside}: {refused}"
        );
    }
    // A redirect to another scheme is not followed at all: the 3xx is the answer.
    let mut hop = url(format!("http://127.0.0.1:{port}/to"));
    hop.query_pairs_mut().append_pair("url", "file:///etc/passwd");
    assert!(matches!(local.fetch(&hop, 1024).await, Err(EgressError::Status(302))));
    // At most three redirects.
    assert!(local.fetch(&url(format!("http://127.0.0.1:{port}/hop/2")), 5 << 20).await.is_ok());
    assert_eq!(
        refusal(local.fetch(&url(format!("http://127.0.0.1:{port}/hop/3")), 1024).await),
        Refusal::TooManyRedirects
    );

    // A name whose addresses are all internal is refused when it is resolved.
    assert_eq!(
        refusal(local.fetch(&url(format!("https://internal.test:{port}/image.jpg")), 1024).await),
        Refusal::Resolves("internal.test".into())
    );
}

#[tokio::test]
async fn deployed_defaults_refuse_loopback_names_and_plain_http() {
    let _serial = SERIAL.lock().await;
    let addr = server().await;
    let port = addr.port();
    // As deployed: no loopback, https only. A name the attacker controls answers 127.0.0.1.
    let deployed = egress(false, &[("rebind.test", &["127.0.0.1"]), ("ip6.test", &["::1"])]);
    for name in ["rebind.test", "ip6.test"] {
        let target = Url::parse(&format!("https://{name}:{port}/image.jpg")).unwrap();
        assert_eq!(refusal(deployed.fetch(&target, 1024).await), Refusal::Resolves(name.into()));
        let delivery = deployed.post(&target, [], "{}".into()).await;
        assert!(matches!(delivery, Err(EgressError::Refused(Refusal::Resolves(_)))), "{delivery:?}");
    }
    for target in [format!("http://127.0.0.1:{port}/image.jpg"), format!("https://localhost:{port}/image.jpg")] {
        let refused = refusal(deployed.fetch(&Url::parse(&target).unwrap(), 1024).await);
        assert!(matches!(refused, Refusal::Address { .. } | Refusal::LocalName(_)), "{target}: {refused}");
    }
    let plain = refusal(deployed.fetch(&Url::parse("http://cdn.example/a.jpg").unwrap(), 1024).await);
    assert_eq!(plain, Refusal::Scheme("http".into()));
}

/// The old download read the whole body before its size check: a 1 GiB "image" took a process
/// from 38 MB to 1,964 MB. Now the limit is enforced while reading.
#[tokio::test]
async fn an_endless_body_costs_at_most_the_limit_and_a_chunk() {
    let _serial = SERIAL.lock().await;
    const LIMIT: usize = 5 * 1024 * 1024;
    // The bound stated in docs/security.md: the limit, plus 2 MiB for the HTTP stack's buffers
    // and the last chunk (measured: about 0.75 MiB).
    const BOUND: usize = LIMIT + 2 * 1024 * 1024;
    let addr = server().await;
    let local = egress(true, &[]);
    let url = Url::parse(&format!("http://{addr}/endless")).unwrap();
    // Warm the client (TLS roots, connection pool) so the measurement sees only the download.
    let _ = local.fetch(&Url::parse(&format!("http://{addr}/image.jpg")).unwrap(), LIMIT).await.unwrap();
    let before = HEAP.current_usage();
    HEAP.reset_peak_usage();
    let result = local.fetch(&url, LIMIT).await;
    let peak = HEAP.peak_usage().saturating_sub(before);
    assert!(matches!(result, Err(EgressError::TooLarge { limit: LIMIT })), "{result:?}");
    eprintln!("endless body: peak heap growth {peak} bytes (limit {LIMIT}, bound {BOUND})");
    assert!(peak <= BOUND, "reading an endless body grew the heap by {peak} bytes, over {BOUND}");
}
