//! Kind `parquet`: the sink ([`sink`]) that writes crash-safe, resumable Parquet
//! tables, and the source ([`source`]) that reads them back with projection and a
//! filter. The table format (ledger, part files, hive folders, markers) is
//! [`crate::store`]. The sink is split by subject: `sink_config` (settings, `_sermo.json`, `_SUCCESS`),
//! `prepare` (resume repair or overwrite staging), `writer` (the part-file
//! writers) and `commit` (the commit point, finishing and swapping the output).

mod commit;
pub mod filter;
mod prepare;
pub mod sink;
mod sink_config;
pub mod source;
mod writer;

pub use sink::{
    HEADER_FILE, Header, Mode, ParquetSinkConfig, QUARANTINE_FILE, SUCCESS_FILE, Success,
    schema_hash,
};
pub use source::ParquetSourceConfig;
