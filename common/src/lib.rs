//! What the logrelay agent and processor share, and nothing else: the record schema, the S3 key
//! layout, the tenant delivery config, the gzip NDJSON codec, AWS client setup and logging setup.

pub mod aws;
pub mod codec;
pub mod key;
pub mod logging;
pub mod record;
pub mod tenant;
