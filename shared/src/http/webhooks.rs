//! The `webhooks` function's routes (a Lambda function URL on AWS). Platform handshakes and
//! signed deliveries arrive with the webhooks work; until then every path answers with a
//! `route_not_found` problem document.

use super::routes::Routes;

pub(super) fn routes() -> Routes {
    Routes::new()
}
