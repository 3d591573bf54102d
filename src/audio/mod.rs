//! Audio knowledge shared by the operators: decoding with symphonia, channel
//! handling, PCM streams, and the reasons a file can be quarantined.

pub mod channels;
pub mod decoder;
pub mod pcm;
pub mod reason;

pub use channels::ChannelMode;
pub use decoder::{ClipInfo, ClipReader, DecodeFailure};
pub use reason::Reason;
