//! What the integration tests share.

use websocket::Rng;

#[path = "../../src/test_rng.rs"]
mod test_rng;
pub use test_rng::Lcg;
