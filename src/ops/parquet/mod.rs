//! Kind `parquet`: the sink ([`sink`]) that writes crash-safe, resumable Parquet
//! tables, and the source ([`source`]) that reads them back with projection and a
//! filter. [`ledger`] is the sink's commit log, [`part`] its file helpers.

pub mod filter;
pub mod ledger;
pub mod part;
pub mod sink;
pub mod source;

pub use sink::{
    HEADER_FILE, Header, Mode, ParquetSinkConfig, QUARANTINE_FILE, SUCCESS_FILE, Success,
    schema_hash,
};
pub use source::ParquetSourceConfig;
